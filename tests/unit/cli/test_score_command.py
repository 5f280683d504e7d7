"""``qwen3-rerank score`` run as a user runs it (a subprocess on the tiny model): where rows go, what input
it refuses and how, and how it stops. Repros of issue 20 (items 1, 2, 5 and 10)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROWS = [
    {"id": 1, "query": "capital of France", "document": "Paris is the capital of France."},
    {"id": 2, "query": "capital of France", "document": "Berlin is in Germany."},
]


def cli(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "qwen3_rerank.cli", *args], text=True, env=env, timeout=timeout, **kwargs
    )


def model_args(model: Path) -> list[str]:
    return ["--model", str(model), "--backend", "transformers", "--dtype", "float32", "--no-progress"]


def write_jsonl(path: Path, rows, prefix: str = "") -> Path:
    path.write_text(prefix + "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows, prefix: str = "") -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(prefix + buffer.getvalue(), encoding="utf-8")
    return path


def expected_scores(reference_reranker, rows) -> list[float]:
    return reference_reranker.score_pairs([(row["query"], row["document"]) for row in rows])


# -- item 1: -o - streams to stdout; other non-regular outputs are refused --------------------------


def test_dash_streams_jsonl_rows_to_stdout_and_the_summary_to_stderr(tiny_model_dir, tmp_path, reference_reranker):
    source = write_jsonl(tmp_path / "two.jsonl", ROWS)
    proc = cli("score", str(source), "-o", "-", *model_args(tiny_model_dir))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]  # nothing but rows on stdout
    assert [{k: v for k, v in row.items() if k != "score"} for row in rows] == ROWS
    assert [row["score"] for row in rows] == pytest.approx(expected_scores(reference_reranker, ROWS), abs=1e-6)
    assert "scored 2 rows" in proc.stderr and "standard output" in proc.stderr
    assert not (tmp_path / "-").exists()


def test_dev_stdout_in_a_pipe_gets_the_csv_rows(tiny_model_dir, tmp_path, reference_reranker):
    # The repro: `... -o /dev/stdout 2>/dev/null | wc -c` gave 0 (fd 1 was lent to stderr).
    source = write_csv(tmp_path / "two.csv", ROWS)
    command = [sys.executable, "-m", "qwen3_rerank.cli", "score", str(source), "-o", "/dev/stdout"]
    shell = " ".join([*command, *model_args(tiny_model_dir)]) + " 2>/dev/null | cat"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [row["document"] for row in rows] == [row["document"] for row in ROWS]
    assert [float(row["score"]) for row in rows] == pytest.approx(expected_scores(reference_reranker, ROWS), abs=1e-6)


@pytest.mark.parametrize("output", ["/dev/null", "/dev/full", "fifo", "directory"])
def test_a_non_regular_output_is_refused_naming_output(tmp_path, output):
    source = write_jsonl(tmp_path / "two.jsonl", ROWS)
    if output == "fifo":
        output = str(tmp_path / "pipe.jsonl")
        os.mkfifo(output)
    elif output == "directory":
        output = str(tmp_path / "out.jsonl")
        os.mkdir(output)
    # A model that does not exist: the output is refused before any model is loaded.
    proc = cli("score", str(source), "-o", output, "--model", str(tmp_path / "no-model"), timeout=60)
    assert proc.returncode == 2
    assert "--output" in proc.stderr and ("not a regular file" in proc.stderr or "a directory" in proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_an_output_in_a_missing_folder_names_output(tmp_path):
    source = write_jsonl(tmp_path / "two.jsonl", ROWS)
    proc = cli("score", str(source), "-o", str(tmp_path / "nope" / "o.jsonl"), "--model", str(tmp_path / "m"))
    assert proc.returncode == 2
    assert "--output" in proc.stderr and "does not exist" in proc.stderr and "Errno" not in proc.stderr


def test_parquet_cannot_stream(tmp_path):
    (tmp_path / "in.parquet").write_bytes(b"PAR1")
    proc = cli("score", str(tmp_path / "in.parquet"), "-o", "-", "--model", str(tmp_path / "m"), timeout=60)
    assert proc.returncode == 2 and "Parquet cannot be streamed" in proc.stderr


# -- item 2: an unterminated quote is an error, not a merged row -----------------------------------


def test_a_csv_with_an_unterminated_quote_is_refused_naming_its_line(tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text('id,query,document\n1,q,"unterminated\n2,q,d\n')
    out = tmp_path / "o.csv"
    proc = cli("score", str(source), "-o", str(out), "--model", str(tmp_path / "no-model"), timeout=60)
    assert proc.returncode == 2
    assert "line 2" in proc.stderr and "never closed" in proc.stderr
    assert not out.exists()


# -- item 5: a UTF-8 BOM (Windows, Excel exports) is accepted; item 10: "1 row" ----------------------


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_a_bom_is_accepted(tiny_model_dir, tmp_path, suffix, reference_reranker):
    write = write_jsonl if suffix == "jsonl" else write_csv
    source = write(tmp_path / f"bom.{suffix}", ROWS[:1], prefix="\ufeff")
    out = tmp_path / f"o.{suffix}"
    proc = cli("score", str(source), "-o", str(out), *model_args(tiny_model_dir))
    assert proc.returncode == 0, proc.stderr
    assert "scored 1 row in" in proc.stderr  # not "1 rows"
    text = out.read_text(encoding="utf-8")
    assert not text.startswith("\ufeff")
    if suffix == "jsonl":
        row = json.loads(text)
    else:
        row = next(csv.DictReader(io.StringIO(text)))
        assert next(iter(row)) == "id"  # the header's first name is not "\ufeffid"
    assert float(row["score"]) == pytest.approx(expected_scores(reference_reranker, ROWS[:1])[0], abs=1e-6)


# -- item 10: a bad row is named by its number; Ctrl-C says how to resume --------------------------


def test_a_bad_row_is_named_by_its_row_and_line(tiny_model_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    lines = [json.dumps(row) for row in ROWS] + ['{"query": "q", "document": "lone \\ud800 surrogate"}']
    source.write_text("\n".join(["", *lines]) + "\n")  # a blank first line: row 3 is on line 4
    proc = cli("score", str(source), "-o", str(tmp_path / "o.jsonl"), *model_args(tiny_model_dir))
    assert proc.returncode == 2
    assert "row 3 (line 4): column 'document' holds a lone surrogate" in proc.stderr
    assert "pairs[" not in proc.stderr


def test_ctrl_c_says_how_to_resume_and_a_rerun_does(tiny_model_dir, tmp_path):
    # Small chunks of short rows: the interrupt lands after the first chunk, long before the last one.
    rows = [{"query": f"query {i % 5}", "document": f"document {i} " + "word " * (i % 8)} for i in range(400)]
    source = write_jsonl(tmp_path / "many.jsonl", rows)
    out = tmp_path / "o.jsonl"
    argv = ["score", str(source), "-o", str(out), "--chunk-size", "4", *model_args(tiny_model_dir)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "qwen3_rerank.cli", *argv], stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 240
    while (not out.exists() or out.stat().st_size == 0) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted: rerun the same command to resume" in err and "Traceback" not in err
    done = len(out.read_text().splitlines())
    assert 0 < done < len(rows)
    proc = cli(*argv, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"(resumed after {done})" in proc.stderr
    assert len(out.read_text().splitlines()) == len(rows)


def test_ctrl_c_in_batch_says_how_to_resume(tmp_path):
    # The real `qwen3-rerank batch` main, in a subprocess, with the Ray runner interrupted as Ctrl-C
    # interrupts one (a Ray cluster is not needed to see what the command says).
    script = (
        "import sys\n"
        "from qwen3_rerank.files import RayRunner\n"
        "def interrupted(*args, **kwargs):\n"
        "    raise KeyboardInterrupt\n"
        "RayRunner.score_blocks = interrupted\n"
        "from qwen3_rerank.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    source = write_jsonl(tmp_path / "pairs.jsonl", ROWS)
    argv = [sys.executable, "-c", script, "batch", str(source), str(tmp_path / "o.jsonl"), "--model", "m"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130
    assert "interrupted: rerun the same command to resume" in proc.stderr and "Traceback" not in proc.stderr
