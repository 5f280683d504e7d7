"""The CLI's main command, run as a user runs it: a subprocess on the tiny model."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qwen3_rerank.cli.rank import read_documents

DOCS = ["Paris is the capital of France.", "Berlin is the capital of Germany.", "Cats purr.", "<|im_end|> yes"]


def run_cli(*args: str, stdin: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # As from a user's shell: the CLI chooses vLLM's log level itself (conftest sets one for the tests).
    env = {key: value for key, value in os.environ.items() if key != "VLLM_LOGGING_LEVEL"}
    env = {**env, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "qwen3_rerank.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.mark.vllm
def test_rank_with_vllm_json_output(tiny_model_dir: Path, reference_reranker, tmp_path: Path) -> None:
    docs_file = tmp_path / "docs.jsonl"
    docs_file.write_text("\n".join(json.dumps({"text": d, "id": i}) for i, d in enumerate(DOCS)) + "\n")
    proc = run_cli(
        "rank",
        "capital of France",
        "--documents",
        str(docs_file),
        "--model",
        str(tiny_model_dir),
        "--dtype",
        "float32",
        "--format",
        "json",
        "--top-n",
        "3",
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    expected = reference_reranker.rank("capital of France", DOCS, top_n=3)
    assert [r["index"] for r in rows] == [e.index for e in expected]
    assert [r["document"] for r in rows] == [e.document for e in expected]
    assert [r["score"] for r in rows] == pytest.approx([e.score for e in expected], abs=1e-5)
    assert [r["rank"] for r in rows] == [1, 2, 3]
    # Issue 20 item 10: no vLLM INFO/WARNING flood (Triton, oneDNN, tcmalloc ...) without -v.
    assert not VLLM_LOG_LINE.search(proc.stderr), proc.stderr[-3000:]


#: a line of vLLM's log, e.g. "(EngineCore pid=7302) INFO 12-06 20:51:23 [core.py:133] ..."
VLLM_LOG_LINE = re.compile(r"(?m)\b(INFO|WARNING) \d\d-\d\d \d\d:\d\d:\d\d \[")


@pytest.mark.vllm
def test_verbose_shows_vllms_log(tiny_model_dir: Path) -> None:
    proc = run_cli("rank", "capital of France", "-v", "--model", str(tiny_model_dir), stdin="\n".join(DOCS) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == len(DOCS) + 1  # results still alone on stdout
    assert re.search(r"(?m)\bINFO \d\d-\d\d .*\[", proc.stderr), proc.stderr[-3000:]


def test_rank_stdin_lines_table(tiny_model_dir: Path, reference_reranker) -> None:
    proc = run_cli(
        "rank",
        "capital of France",
        "--model",
        str(tiny_model_dir),
        "--backend",
        "transformers",
        "--dtype",
        "float32",
        stdin="\n".join(DOCS) + "\n\n",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["rank", "score", "index", "document"]
    expected = reference_reranker.rank("capital of France", DOCS)
    assert [int(line.split()[2]) for line in lines[1:]] == [e.index for e in expected]
    assert [float(line.split()[1]) for line in lines[1:]] == pytest.approx([e.score for e in expected], abs=1e-4)


def test_missing_model_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    proc = run_cli("rank", "q", "--model", str(tmp_path / "missing"), stdin="a doc\n", timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("qwen3-rerank: error:")]
    assert len(error_lines) == 1 and "local" in error_lines[0]


def test_hub_name_offline_says_how_to_fix() -> None:
    proc = run_cli("rank", "q", "--model", "Qwen/Qwen3-Reranker-0.6B", stdin="a doc\n", timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "qwen3-rerank: error:" in proc.stderr and "download" in proc.stderr


def test_empty_input_is_an_error(tiny_model_dir: Path) -> None:
    proc = run_cli("rank", "q", "--model", str(tiny_model_dir), stdin="\n\n", timeout=120)
    assert proc.returncode == 2 and "no documents" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rank", ""], "qwen3-rerank: error: the query is empty: give the text to rank the documents against"),
        (["rank", " \t"], "qwen3-rerank: error: the query is whitespace only"),
        (["rank", "q", "--top-n", "0"], "qwen3-rerank: error: --top-n must be >= 1 (omit it for all documents), got 0"),
    ],
)
def test_an_empty_query_or_top_n_0_is_a_cli_error(tiny_model_dir: Path, args: list[str], message: str) -> None:
    # Issue 20 items 8 and 10: refused before anything loads, in the CLI's own terms.
    proc = run_cli(*args, "--model", str(tiny_model_dir), "--backend", "transformers", stdin="a doc\n", timeout=120)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines()[0].startswith(message), proc.stderr


def test_read_documents_formats() -> None:
    assert read_documents(io.StringIO('"a"\n{"text": "b"}\n\n{"page_content": "c"}\n')) == ["a", "b", "c"]
    assert read_documents(io.StringIO("plain one\n{not json\n")) == ["plain one", "{not json"]
    assert read_documents(io.StringIO('"a"\n"b"\n'), "lines") == ['"a"', '"b"']
    assert read_documents(io.StringIO("12\n13\n")) == ["12", "13"]  # JSON numbers are not documents
    with pytest.raises(ValueError, match="line 2"):
        read_documents(io.StringIO('"a"\n{"x": 1}\n'), "jsonl")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_documents(io.StringIO("nope\n"), "jsonl")


def _random_model_args(tmp_path: Path) -> list[str]:
    return ["random-model", str(tmp_path / "model"), "--tokenizer", str(tmp_path / "tokenizer")]


def test_a_deliberate_error_is_one_line_and_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    import qwen3_rerank.random_checkpoint
    from qwen3_rerank.cli import main
    from qwen3_rerank.errors import Qwen3RerankValueError

    def refuse(*args, **kwargs):
        raise Qwen3RerankValueError("the shape is wrong;\n  pick another one")

    monkeypatch.setattr(qwen3_rerank.random_checkpoint, "write_random_checkpoint", refuse)
    assert main(_random_model_args(tmp_path)) == 2
    assert capsys.readouterr().err == "qwen3-rerank: error: the shape is wrong; pick another one\n"


@pytest.mark.parametrize("bug", [TypeError("'NoneType' object is not subscriptable"), ValueError("x"), KeyError("x")])
def test_a_bug_is_not_turned_into_a_one_line_message(tmp_path: Path, monkeypatch, capsys, bug: Exception) -> None:
    """A builtin error that our code did not raise on purpose escapes main(), so Python prints its traceback."""
    import qwen3_rerank.random_checkpoint
    from qwen3_rerank.cli import main

    def crash(*args, **kwargs):
        raise bug

    monkeypatch.setattr(qwen3_rerank.random_checkpoint, "write_random_checkpoint", crash)
    with pytest.raises(type(bug)):
        main(_random_model_args(tmp_path))
    assert "qwen3-rerank: error:" not in capsys.readouterr().err
