"""Resuming a partial output is refused under other settings (issue 19: ``qwen3-rerank score`` resumed with
another ``--model`` silently mixed two models' scores in one file). Both runners share the check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qwen3_rerank.chunking import ChunkOptions
from qwen3_rerank.files import plan_score_file, run_settings, score_file
from qwen3_rerank.files.manifest import Manifest

ROWS = [{"id": i, "query": f"query {i % 3}", "document": f"document {i}"} for i in range(6)]


def settings(**changes):
    base = {
        "model": "tiny",
        "backend": "transformers",
        "dtype": "float32",
        "instruction": "Given a web search query, retrieve relevant passages that answer the query",
        "max_length": 8192,
        "chunking": ChunkOptions(),
    }
    return run_settings(**(base | changes))


def partial_output(tmp_path: Path, manifest_settings) -> tuple[Path, Path]:
    """An input of 6 rows and a partial output of its first 2, labelled with ``manifest_settings``."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    out = tmp_path / "out.jsonl"
    out.write_text("".join(json.dumps({**row, "score": 0.5}) + "\n" for row in ROWS[:2]))
    Manifest(tmp_path / "out.jsonl.manifest.json").write(manifest_settings)
    return source, out


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", "another-model"),
        ("dtype", "bfloat16"),
        ("instruction", "Find the city"),
        ("max_length", 512),
        ("backend", "vllm"),
        ("chunking", ChunkOptions.create("chunk", None, 0, 64)),
    ],
)
def test_resuming_under_other_settings_is_refused_naming_the_field(tmp_path, field, value):
    source, out = partial_output(tmp_path, settings())
    with pytest.raises(ValueError, match=rf"other settings \({field} differ: {field} was .*, now .*\).*--overwrite"):
        plan_score_file(source, out, settings=settings(**{field: value}))
    assert len(out.read_text().splitlines()) == 2  # untouched
    assert plan_score_file(source, out, settings=settings()).rows_done == 2  # the same settings resume
    assert plan_score_file(source, out, settings=settings(**{field: value}), overwrite=True).rows_done == 0
    assert not (tmp_path / "out.jsonl.manifest.json").exists()


def test_another_package_version_is_refused(tmp_path):
    old = {**settings(), "version": "0.0.1"}
    source, out = partial_output(tmp_path, old)
    with pytest.raises(ValueError, match=r"version differ: version was '0.0.1', now"):
        plan_score_file(source, out, settings=settings())


def test_a_reranker_with_another_instruction_is_refused(tmp_path, tokenizer_dir):
    from doubles import CountingBackend

    from qwen3_rerank import EngineError, Reranker

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    out = tmp_path / "out.jsonl"
    with (
        Reranker(str(tokenizer_dir), backend=CountingBackend(fail_on_call=2)) as dying,
        pytest.raises(EngineError, match="injected"),
    ):
        score_file(dying, source, out, chunk_size=2)
    manifest = json.loads((tmp_path / "out.jsonl.manifest.json").read_text())["settings"]
    assert manifest["model"] == str(tokenizer_dir) and manifest["backend"] == "counting"
    other = Reranker(str(tokenizer_dir), backend=CountingBackend(), instruction="Find the city")
    with other, pytest.raises(ValueError, match=r"instruction differ"):
        score_file(other, source, out, chunk_size=2)
    with Reranker(str(tokenizer_dir), backend=CountingBackend()) as same:
        assert score_file(same, source, out, chunk_size=2).rows_resumed == 2
    assert not (tmp_path / "out.jsonl.manifest.json").exists()  # finished: nothing left to resume


def test_the_command_refuses_another_model_dtype_instruction_or_max_length(tiny_model_dir, tmp_path):
    # The defect's repro: a run stopped part-way, resumed with other flags. A bad third row stops the first
    # run after its first chunk (2 rows), leaving a partial output and its manifest.
    source = tmp_path / "in.jsonl"
    rows = [json.dumps(row) for row in ROWS]
    rows[2] = '{"query": "q", "document": "lone \\ud800"}'
    source.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    flags = ["--model", str(tiny_model_dir), "--backend", "transformers", "--dtype", "float32", "--no-progress"]

    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "qwen3_rerank.cli", "score", str(source), "-o", str(out), "--chunk-size", "2"]
        return subprocess.run([*argv, *flags, *extra], capture_output=True, text=True, env=env, timeout=300)

    first = cli()
    assert first.returncode == 2 and "row 3 (line 3)" in first.stderr
    assert len(out.read_text().splitlines()) == 2
    for extra, field in [
        (["--model", str(tmp_path / "other-model")], "model"),
        (["--dtype", "bfloat16"], "dtype"),
        (["--instruction", "Find the city"], "instruction"),
        (["--max-length", "512"], "max_length"),
    ]:
        refused = cli(*extra)  # later flags win; refused before any model loads
        assert refused.returncode == 2, refused.stderr
        assert f"({field} differ" in refused.stderr and "--overwrite" in refused.stderr
    assert len(out.read_text().splitlines()) == 2
    same = cli()  # the same settings resume (and stop at the same bad row)
    assert same.returncode == 2 and "row 3 (line 3)" in same.stderr and "differ" not in same.stderr
