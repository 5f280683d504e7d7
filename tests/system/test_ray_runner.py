"""The Ray runner of the file-scoring plan on a local Ray (2 CPUs) with the tiny model.

It must give the local runner's output exactly (same rows, columns, order and score floats), resume a
partial output without rescoring or duplicating a row, refuse a resume under other settings, stop at a
failed block with its row named, and never read the input further ahead than its window.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
ray = pytest.importorskip("ray")

import pyarrow.parquet as pq  # noqa: E402

from qwen3_rerank import ModelNotFoundError, PromptTooLongError, RerankerSettings  # noqa: E402
from qwen3_rerank.cli import main  # noqa: E402
from qwen3_rerank.files import RayRunner, plan_score_file, score_file  # noqa: E402
from qwen3_rerank.files.rows import Block  # noqa: E402

TOL = 1e-5  # batches of other sizes move float32 scores by about 1e-6
ENGINE = {"dtype": "float32"}
WORDS = ["cats", "purr", "dogs", "bark", "green", "tea", "Paris", "tower", "ranking", "BM25", "the", "a", "of"]
WORDS += ["<|im_end|>", "<think>", "42"]


def make_pairs(queries: int, docs: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for q in range(queries):
        query = f"query {q}: " + " ".join(rng.choices(WORDS, k=rng.randint(2, 8)))
        for d in range(docs):
            rows.append(
                {
                    "query_id": f"q{q}",
                    "doc_id": d,
                    "query": query,
                    "document": " ".join(rng.choices(WORDS, k=rng.randint(1, 60))),
                    "instruction": "Find documents about animals" if q % 5 == 0 else "",
                }
            )
    return rows


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(rows: list[dict], path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def settings(model: Path, **kwargs) -> RerankerSettings:
    return RerankerSettings.create(str(model), backend="transformers", engine_options=ENGINE, **kwargs)


def cli(*argv: str) -> list[str]:
    """Options that point a command at the test's Ray and tiny model."""
    return [*argv, "--backend", "transformers", "--dtype", "float32", "--no-progress"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 << 20, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_the_same_output_as_the_local_runner(local_ray, tiny_model_dir, reference_reranker, tmp_path) -> None:
    """Two runners of one plan: the same rows, columns, order and score floats, byte for byte."""
    rows = make_pairs(queries=8, docs=25, seed=7)  # 200 pairs: 8 blocks of 25 over 2 actors
    rows[3]["document"] = '"quoted", with a comma\nand a newline'
    source = tmp_path / "pairs.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    runner = RayRunner(reference_reranker.settings, actors=2)
    on_ray = score_file(runner, source, tmp_path / "ray.csv", chunk_size=25)
    local = score_file(reference_reranker, source, tmp_path / "local.csv", chunk_size=25)
    assert (on_ray.rows_total, on_ray.rows_scored, runner.actors_started) == (200, 200, 2)
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    with (tmp_path / "ray.csv").open(newline="") as handle:
        out = list(csv.DictReader(handle))
    assert [{k: r[k] for k in rows[0]} for r in out] == [{k: str(v) for k, v in r.items()} for r in rows]
    assert list(out[0]) == [*rows[0], "score"]
    assert local.rows_scored == 200
    assert not (tmp_path / "ray.csv.manifest.json").exists()  # the output is whole


def test_batch_ranks_within_each_query_and_a_rerun_does_nothing(
    local_ray, tiny_model_dir, reference_reranker, tmp_path, capfd
) -> None:
    rows = make_pairs(queries=4, docs=10, seed=3)
    rows[1]["document"] = rows[0]["document"]  # a tie: input order decides
    source = write_parquet(rows, tmp_path / "pairs.parquet")
    output = tmp_path / "scores.parquet"
    address = ray.get_runtime_context().gcs_address
    argv = cli("batch", str(source), str(output), "--model", str(tiny_model_dir), "--rank", "--chunk-size", "8")
    assert main([*argv, "--actors", "2", "--ray-address", address]) == 0
    err = capfd.readouterr().err
    assert "scored 40 rows on 2 Ray actors" in err and f"ranked within query_id: {output}" in err
    table = pq.read_table(output)
    assert table.column_names == [*rows[0], "score", "rank"]
    assert table.schema.field("rank").type == pa.int64()
    out = table.to_pylist()
    assert [{k: r[k] for k in rows[0]} for r in out] == rows
    pairs = [((r["instruction"], r["query"]) if r["instruction"] else r["query"], r["document"]) for r in rows]
    assert [r["score"] for r in out] == pytest.approx(reference_reranker.score_pairs(pairs), abs=TOL)
    for query in {r["query_id"] for r in rows}:
        mine = [r for r in out if r["query_id"] == query]
        best_first = sorted(mine, key=lambda r: -r["score"])  # stable: ties in input order
        assert [r["rank"] for r in best_first] == list(range(1, len(mine) + 1))
    assert out[0]["score"] == out[1]["score"] and out[0]["rank"] < out[1]["rank"]

    stamp = output.stat().st_mtime_ns
    assert main([*argv, "--ray-address", address]) == 0
    assert "already holds all 40 rows; nothing to do" in capfd.readouterr().err
    assert output.stat().st_mtime_ns == stamp


def test_score_on_ray_streams_to_stdout(local_ray, tiny_model_dir, reference_reranker, tmp_path, capfd) -> None:
    rows = make_pairs(queries=2, docs=6, seed=5)
    source = write_jsonl(rows, tmp_path / "pairs.jsonl")
    argv = cli("score", str(source), "-o", "-", "--on", "ray", "--model", str(tiny_model_dir), "--chunk-size", "4")
    assert main([*argv, "--actors", "2", "--ray-address", ray.get_runtime_context().gcs_address]) == 0
    out, err = capfd.readouterr()
    got = [json.loads(line) for line in out.splitlines()]
    assert [{k: r[k] for k in rows[0]} for r in got] == rows
    pairs = [((r["instruction"], r["query"]) if r["instruction"] else r["query"], r["document"]) for r in rows]
    assert [r["score"] for r in got] == pytest.approx(reference_reranker.score_pairs(pairs), abs=TOL)
    assert "scored 12 rows on 2 Ray actors" in err and "standard output" in err


def test_a_failed_block_stops_at_its_row_and_a_rerun_resumes(
    local_ray, tiny_model_dir, reference_reranker, tmp_path, capfd
) -> None:
    rows = make_pairs(queries=6, docs=50, seed=1)  # 300 pairs, 6 blocks of 50
    rows[120]["query"] = "too long " * 400  # the template and this query alone exceed max_length
    source = write_jsonl(rows, tmp_path / "pairs.jsonl")
    output = tmp_path / "scores.jsonl"
    runner = RayRunner(settings(tiny_model_dir, max_length=512), actors=2)
    with pytest.raises(PromptTooLongError, match=r"^rows 101-150: The template, instruction and query take"):
        score_file(runner, source, output, chunk_size=50)
    assert len(read_jsonl(output)) == 100  # the blocks before the failed one are written
    manifest = tmp_path / "scores.jsonl.manifest.json"
    assert json.loads(manifest.read_text())["settings"]["max_length"] == 512

    # Another setting is refused before any actor starts, naming what differs.
    address = ray.get_runtime_context().gcs_address
    argv = cli("batch", str(source), str(output), "--model", str(tiny_model_dir), "--chunk-size", "50")
    assert main([*argv, "--max-length", "1024", "--ray-address", address]) == 2
    assert "max_length was 512, now 1024" in capfd.readouterr().err

    rows[120]["query"] = "a fixed query"
    write_jsonl(rows, source)
    assert main([*argv, "--max-length", "512", "--ray-address", address]) == 0
    assert "scored 200 rows (resumed after 100)" in capfd.readouterr().err
    out = read_jsonl(output)
    assert [{k: r[k] for k in rows[0]} for r in out] == rows
    pairs = [((r["instruction"], r["query"]) if r["instruction"] else r["query"], r["document"]) for r in rows]
    assert [r["score"] for r in out] == pytest.approx(reference_reranker.score_pairs(pairs), abs=TOL)
    assert not manifest.exists()


def test_a_killed_run_resumes_without_duplicates(local_ray, tiny_model_dir, tmp_path, reference_reranker) -> None:
    rows = make_pairs(queries=12, docs=50, seed=2)  # 600 pairs, 12 blocks
    source = write_jsonl(rows, tmp_path / "pairs.jsonl")
    output = tmp_path / "scores.jsonl"
    argv = [sys.executable, "-m", "qwen3_rerank.cli", "batch", str(source), str(output)]
    argv += cli("--model", str(tiny_model_dir), "--chunk-size", "50", "--actors", "1")
    argv += ["--ray-address", ray.get_runtime_context().gcs_address]
    process = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while process.poll() is None and time.monotonic() < deadline:
            if output.exists() and output.read_bytes().count(b"\n") >= 150:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read().decode()[-2000:] if process.stderr else ""
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    runner = RayRunner(settings(tiny_model_dir), actors=1)
    job = plan_score_file(source, output, chunk_size=50, settings=runner.manifest_settings())
    finished_before = job.rows_done
    assert 150 <= finished_before < 600

    result = job.run(runner)
    assert (result.rows_resumed, result.rows_scored) == (finished_before, 600 - finished_before)
    out = read_jsonl(output)
    assert [(r["query_id"], r["doc_id"]) for r in out] == [(r["query_id"], r["doc_id"]) for r in rows]
    pairs = [((r["instruction"], r["query"]) if r["instruction"] else r["query"], r["document"]) for r in rows]
    assert [r["score"] for r in out] == pytest.approx(reference_reranker.score_pairs(pairs), abs=TOL)


def test_the_driver_reads_no_further_than_its_window(local_ray, tiny_model_dir) -> None:
    """At most actors * window_per_actor blocks are read and not yet handed back: memory stays bounded."""
    pulled: list[int] = []

    def blocks():
        for number in range(12):
            pulled.append(number)
            yield Block(number * 3 + 1, [(f"query {number}", f"document {number}.{i}") for i in range(3)], None)

    runner = RayRunner(settings(tiny_model_dir), actors=2, window_per_actor=2)
    seen = []
    for handed, (block, scores) in enumerate(runner.score_blocks(blocks())):
        assert len(pulled) <= handed + 4  # this block and at most 3 more read ahead
        seen.append(block.first_row)
        assert len(scores) == 3
    assert seen == [n * 3 + 1 for n in range(12)]  # strictly in input order
    assert len(pulled) == 12


def test_actors_that_cannot_start_give_the_local_error(local_ray, tmp_path) -> None:
    source = write_jsonl(make_pairs(queries=2, docs=5), tmp_path / "pairs.jsonl")
    with pytest.raises(ModelNotFoundError, match="Cannot load the tokenizer"):
        score_file(RayRunner(settings(tmp_path / "no-such-model"), actors=1), source, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists() or (tmp_path / "out.jsonl").read_text() == ""


# -- options (no Ray needed) --------------------------------------------------------------------------


def test_bad_runner_options_fail_before_any_work(tiny_model_dir, tmp_path, capfd) -> None:
    with pytest.raises(ValueError, match="actors must be a positive int or None"):
        RayRunner(settings(tiny_model_dir), actors=0)
    with pytest.raises(ValueError, match="cpus_per_actor must be a number >= 0"):
        RayRunner(settings(tiny_model_dir), cpus_per_actor=-1)
    source = write_jsonl(make_pairs(queries=1, docs=2), tmp_path / "p.jsonl")
    assert main(["score", str(source), "-o", str(tmp_path / "o.jsonl"), "--actors", "2"]) == 2
    assert "--actors apply to --on ray" in capfd.readouterr().err
    assert main(["batch", str(source), str(tmp_path / "o.parquet"), "--model", "m"]) == 2
    assert "must have the input's format (jsonl)" in capfd.readouterr().err
    assert main(["batch", str(source), "-", "--rank", "--model", "m"]) == 2
    assert "--rank needs an output file" in capfd.readouterr().err
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "o.parquet").exists()


class _FakeRay:
    """What default_gpus_per_actor asks of Ray: the cluster's resources."""

    def __init__(self, gpus: int) -> None:
        self.gpus = gpus

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 16.0, "GPU": float(self.gpus)}


@pytest.mark.parametrize(("backend", "wanted"), [("vllm", 1), ("packed", 1), ("transformers", 0), ("server", 0)])
def test_engines_on_a_gpu_get_one_gpu_per_actor(backend, wanted) -> None:
    # Drift defect (issue 19): a batch with backend packed gave its actors no GPU.
    from qwen3_rerank.files.ray_runner import default_gpus_per_actor

    assert default_gpus_per_actor(backend, _FakeRay(gpus=4)) == wanted
    assert default_gpus_per_actor(backend, _FakeRay(gpus=0)) == 0


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_backend_in_an_actor(local_ray, tiny_model_dir, tmp_path, reference_reranker) -> None:
    """One vLLM engine inside a Ray actor (CPU here; one GPU per actor on a GPU cluster)."""
    rows = make_pairs(queries=10, docs=30, seed=4)
    output = tmp_path / "scores.jsonl"
    vllm = RerankerSettings.create(str(tiny_model_dir), backend="vllm", engine_options=ENGINE)
    result = score_file(RayRunner(vllm, actors=1, cpus_per_actor=2), write_jsonl(rows, tmp_path / "p.jsonl"), output)
    assert result.rows_scored == 300
    pairs = [((r["instruction"], r["query"]) if r["instruction"] else r["query"], r["document"]) for r in rows]
    assert [r["score"] for r in read_jsonl(output)] == pytest.approx(reference_reranker.score_pairs(pairs), abs=1e-5)
