"""The Ray batch job on a local Ray (2 CPUs) with the tiny model.

Every input pair must come out exactly once with its in-process score; a failed shard or a killed run
must resume from the finished shards without rescoring them and without duplicating a row.
"""

from __future__ import annotations

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
pytest.importorskip("ray.data")

import pyarrow.parquet as pq  # noqa: E402

from qwen3_rerank.batch import read_pairs, run_batch_job  # noqa: E402

TOL = 1e-5
ENGINE = {"dtype": "float32"}
WORDS = [
    "cats",
    "purr",
    "dogs",
    "bark",
    "green",
    "tea",
    "Paris",
    "tower",
    "ranking",
    "BM25",
    "the",
    "a",
    "of",
    "<|im_end|>",
    "<think>",
    "42",
]


def make_pairs(queries: int, docs: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for q in range(queries):
        query = f"query {q}: " + " ".join(rng.choices(WORDS, k=rng.randint(2, 8)))
        for d in range(docs):
            row = {
                "query_id": f"q{q}",
                "doc_id": d,
                "query": query,
                "document": " ".join(rng.choices(WORDS, k=rng.randint(1, 60))),
            }
            if q % 5 == 0:
                row["instruction"] = "Find documents about animals"
            rows.append(row)
    return rows


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(rows: list[dict], path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist([{**r, "instruction": r.get("instruction")} for r in rows]), path)
    return path


def in_process(reranker, rows: list[dict]) -> dict[tuple[str, int], float]:
    pairs = [((r["instruction"], r["query"]) if r.get("instruction") else r["query"], r["document"]) for r in rows]
    return {(r["query_id"], r["doc_id"]): s for r, s in zip(rows, reranker.score_pairs(pairs), strict=True)}


def read_output(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return pq.read_table(path).to_pylist()


def assert_exactly_once(out: list[dict], expected: dict[tuple[str, int], float]) -> None:
    keys = [(r["query_id"], r["doc_id"]) for r in out]
    assert len(keys) == len(set(keys)) == len(expected)
    assert set(keys) == set(expected)
    worst = max(abs(r["score"] - expected[(r["query_id"], r["doc_id"])]) for r in out)
    assert worst <= TOL


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 << 20, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def pairs() -> list[dict]:
    return make_pairs(queries=40, docs=50)  # 2000 pairs


@pytest.fixture(scope="module")
def expected(reference_reranker, pairs) -> dict[tuple[str, int], float]:
    return in_process(reference_reranker, pairs)


def job(input_path: Path, output: Path, model: Path, **kwargs):
    options = {"backend": "transformers", "engine_options": ENGINE, "progress": False, "num_actors": 2}
    return run_batch_job(input_path, output, model=str(model), **(options | kwargs))


def test_every_pair_once_with_its_in_process_score(local_ray, tiny_model_dir, tmp_path, pairs, expected) -> None:
    output = tmp_path / "scores.parquet"
    done: list[str] = []
    summary = job(
        write_jsonl(pairs, tmp_path / "pairs.jsonl"),
        output,
        tiny_model_dir,
        shard_size=250,
        rank=True,
        on_shard_done=lambda shard, n: done.append(shard),
    )
    assert summary.complete and summary.output == str(output)
    assert (summary.pairs, summary.shards, summary.pairs_scored, summary.shards_skipped) == (2000, 8, 2000, 0)
    assert summary.failures == () and summary.actors == 2 and summary.pairs_per_second > 0
    assert len(done) == len(set(done)) == 8
    out = read_output(output)
    assert_exactly_once(out, expected)
    # Output keeps input order; rank is 1 for the best document of each query, ties in input order.
    assert [(r["query_id"], r["doc_id"]) for r in out] == [(p["query_id"], p["doc_id"]) for p in pairs]
    by_query: dict[str, list[dict]] = {}
    for row in out:
        by_query.setdefault(row["query_id"], []).append(row)
    for rows in by_query.values():
        best_first = sorted(rows, key=lambda r: -r["score"])
        assert [r["rank"] for r in best_first] == list(range(1, len(rows) + 1))

    # A rerun finds every shard finished: nothing is scored again, the output is the same.
    parts = sorted(output.with_name("scores.parquet.shards").glob("part-*.parquet"))
    stamps = [p.stat().st_mtime_ns for p in parts]
    again = job(tmp_path / "pairs.jsonl", output, tiny_model_dir, shard_size=250, rank=True)
    assert (again.pairs_scored, again.shards_skipped, again.actors) == (0, 8, 0)
    assert [p.stat().st_mtime_ns for p in parts] == stamps
    assert read_output(output) == out


def test_a_failed_shard_is_reported_and_only_it_is_rescored(
    local_ray, tiny_model_dir, tmp_path, reference_reranker
) -> None:
    rows = make_pairs(queries=6, docs=50, seed=1)  # 300 pairs, 6 shards
    rows[120]["query"] = "too long " * 400  # the template and this query alone exceed max_length
    output = tmp_path / "scores.jsonl"
    summary = job(
        write_parquet(rows, tmp_path / "pairs.parquet"), output, tiny_model_dir, shard_size=50, max_length=512
    )
    assert not summary.complete and not output.exists()
    assert len(summary.failures) == 1
    failed_shard, error = summary.failures[0]
    assert failed_shard.startswith("000002-") and "PromptTooLongError" in error
    assert (summary.shards_scored, summary.pairs_scored) == (5, 250)
    assert "failures: 1 shard(s)" in str(summary) and "rerun" in str(summary)

    rows[120]["query"] = "a fixed query"
    fixed = write_parquet(rows, tmp_path / "pairs.parquet")
    summary = job(fixed, output, tiny_model_dir, shard_size=50, max_length=512)
    assert summary.complete
    assert (summary.shards_scored, summary.shards_skipped, summary.pairs_scored) == (1, 5, 50)
    assert_exactly_once(read_output(output), in_process(reference_reranker, rows))


def test_a_killed_run_resumes_without_duplicates(local_ray, tiny_model_dir, tmp_path, reference_reranker) -> None:
    rows = make_pairs(queries=12, docs=50, seed=2)  # 600 pairs, 12 shards
    source = write_parquet(rows, tmp_path / "pairs.parquet")
    output = tmp_path / "scores.jsonl"
    parts = tmp_path / "scores.jsonl.shards"
    argv = [
        sys.executable,
        "-m",
        "qwen3_rerank.cli",
        "batch",
        str(source),
        str(output),
        "--model",
        str(tiny_model_dir),
        "--backend",
        "transformers",
        "--dtype",
        "float32",
        "--shard-size",
        "50",
        "--actors",
        "1",
        "--quiet",
        "--ray-address",
        ray.get_runtime_context().gcs_address,
    ]
    process = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while len(list(parts.glob("part-*.parquet"))) < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finished_before = len(list(parts.glob("part-*.parquet")))
    assert 3 <= finished_before < 12
    assert not output.exists()

    summary = job(source, output, tiny_model_dir, shard_size=50, num_actors=1)
    assert summary.complete
    assert summary.shards_skipped == finished_before and summary.shards_scored == 12 - finished_before
    assert_exactly_once(read_output(output), in_process(reference_reranker, rows))


def test_cli_prints_the_summary(local_ray, tiny_model_dir, tmp_path) -> None:
    rows = make_pairs(queries=3, docs=10, seed=3)
    source = write_jsonl(rows, tmp_path / "pairs.jsonl")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "qwen3_rerank.cli",
            "batch",
            str(source),
            str(tmp_path / "out.parquet"),
            "--model",
            str(tiny_model_dir),
            "--backend",
            "transformers",
            "--dtype",
            "float32",
            "--shard-size",
            "8",
            "--rank",
            "--quiet",
            "--ray-address",
            ray.get_runtime_context().gcs_address,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pairs: 30 in 4 shards; scored now: 30 pairs (4 shards)" in result.stderr
    assert "failures: 0 shard(s)" in result.stderr
    assert pq.read_table(tmp_path / "out.parquet").column_names == ["query_id", "doc_id", "score", "rank"]


def test_actors_that_cannot_start_give_one_clear_error(local_ray, tmp_path) -> None:
    from qwen3_rerank import EngineError

    source = write_jsonl(make_pairs(queries=2, docs=5), tmp_path / "pairs.jsonl")
    with pytest.raises(EngineError, match="Ray execution failed: ModelNotFoundError: Cannot load the tokenizer"):
        job(source, tmp_path / "out.parquet", tmp_path / "no-such-model", num_actors=1)
    assert not (tmp_path / "out.parquet").exists()


# -- input checks (no Ray needed) --------------------------------------------------------------------


def test_bad_input_is_refused_with_the_reason(tmp_path) -> None:
    good = make_pairs(queries=2, docs=3)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) doc_id"):
        read_pairs(write_parquet([{k: v for k, v in r.items() if k != "doc_id"} for r in good], tmp_path / "a.parquet"))
    with pytest.raises(ValueError, match=r"appear more than once, e.g. \('q0', 1\)"):
        read_pairs(write_jsonl([*good, good[1]], tmp_path / "b.jsonl"))
    with pytest.raises(ValueError, match="row 2 has no document"):
        read_pairs(write_jsonl([*good[:2], {**good[2], "document": None}], tmp_path / "c.jsonl"))
    with pytest.raises(ValueError, match="holds no pairs"):
        read_pairs(write_jsonl([], tmp_path / "d.jsonl"))
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_pairs(tmp_path / "e.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_pairs(tmp_path / "missing.jsonl")
    (tmp_path / "f.jsonl").write_text('{"query_id": "q", "doc_id": 1, "query": "x", "document": "y"}\nnot json\n')
    with pytest.raises(ValueError, match="cannot read jsonl pairs"):
        read_pairs(tmp_path / "f.jsonl")


def test_bad_job_options_fail_before_any_work(tmp_path) -> None:
    source = write_jsonl(make_pairs(queries=1, docs=2), tmp_path / "p.jsonl")
    with pytest.raises(ValueError, match="num_actors must be a positive int"):
        run_batch_job(source, tmp_path / "o.parquet", model="m", num_actors=0)
    with pytest.raises(ValueError, match="shard_size must be a positive int"):
        run_batch_job(source, tmp_path / "o.parquet", model="m", shard_size=0)
    with pytest.raises(ValueError, match="cannot tell the format"):
        run_batch_job(source, tmp_path / "o.txt", model="m")
    assert not (tmp_path / "o.parquet.shards").exists()


def test_work_dir_of_other_settings_is_refused(tmp_path) -> None:
    from qwen3_rerank.batch.shards import WorkDir

    WorkDir(tmp_path / "w", {"model": "a", "max_length": 512})
    WorkDir(tmp_path / "w", {"model": "a", "max_length": 512})  # same settings: resumes
    with pytest.raises(ValueError, match=r"other settings \(max_length differ: max_length was 512, now 1024\)"):
        WorkDir(tmp_path / "w", {"model": "a", "max_length": 1024})


def test_shard_ids_are_deterministic_and_follow_content(tmp_path) -> None:
    from qwen3_rerank.batch.shards import plan_shards

    rows = make_pairs(queries=3, docs=10)
    table = read_pairs(write_jsonl(rows, tmp_path / "p.jsonl"))
    first = plan_shards(table, 8, {"model": "m"})
    assert [s.id for s in first] == [s.id for s in plan_shards(table, 8, {"model": "m"})]
    assert [(s.start, s.stop) for s in first] == [(0, 8), (8, 16), (16, 24), (24, 30)]
    rows[20]["document"] += "!"
    changed = plan_shards(read_pairs(write_jsonl(rows, tmp_path / "p.jsonl")), 8, {"model": "m"})
    assert [a.id == b.id for a, b in zip(first, changed, strict=True)] == [True, True, False, True]
    assert all(a.id != b.id for a, b in zip(first, plan_shards(table, 8, {"model": "other"}), strict=True))


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_backend_in_an_actor(local_ray, tiny_model_dir, tmp_path, reference_reranker) -> None:
    """One vLLM engine inside a Ray actor (CPU here; one GPU per actor on a GPU cluster)."""
    rows = make_pairs(queries=10, docs=30, seed=4)
    output = tmp_path / "scores.parquet"
    summary = run_batch_job(
        write_jsonl(rows, tmp_path / "pairs.jsonl"),
        output,
        model=str(tiny_model_dir),
        backend="vllm",
        engine_options=ENGINE,
        shard_size=100,
        num_actors=1,
        cpus_per_actor=2,
        progress=False,
    )
    assert summary.complete and summary.failures == ()
    assert_exactly_once(read_output(output), in_process(reference_reranker, rows))


class _FakeRay:
    """What _default_gpus asks of Ray: the cluster's resources."""

    def __init__(self, gpus: int) -> None:
        self.gpus = gpus

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 16.0, "GPU": float(self.gpus)}


@pytest.mark.parametrize(("backend", "wanted"), [("vllm", 1), ("packed", 1), ("transformers", 0), ("server", 0)])
def test_engines_on_a_gpu_get_one_gpu_per_actor(backend, wanted) -> None:
    # Drift defect (issue 19): a batch with backend packed gave its actors no GPU.
    from qwen3_rerank.batch.job import _default_gpus

    assert _default_gpus(backend, _FakeRay(gpus=4)) == wanted
    assert _default_gpus(backend, _FakeRay(gpus=0)) == 0


def test_both_runners_give_the_same_scores_on_the_same_csv(local_ray, tiny_model_dir, tmp_path) -> None:
    """The Ray runner and the local runner (qwen3-rerank score) are two runners of one engine."""
    import csv

    from qwen3_rerank import Reranker
    from qwen3_rerank.files import score_file

    rows = make_pairs(queries=4, docs=10, seed=7)
    rows[3]["document"] = '"quoted", with a comma\nand a newline'
    source = tmp_path / "pairs.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["query_id", "doc_id", "query", "document", "instruction"])
        writer.writeheader()
        writer.writerows(rows)  # rows without an instruction: an empty field, the default one in both runners
    summary = job(source, tmp_path / "ray.csv", tiny_model_dir, shard_size=16)
    assert summary.complete, summary
    with Reranker(str(tiny_model_dir), backend="transformers", engine_options=ENGINE) as reranker:
        score_file(reranker, source, tmp_path / "local.csv", chunk_size=16)
    with (tmp_path / "ray.csv").open(newline="") as handle:
        ray_rows = list(csv.DictReader(handle))
    with (tmp_path / "local.csv").open(newline="") as handle:
        local_rows = list(csv.DictReader(handle))
    assert [(r["query_id"], r["doc_id"]) for r in ray_rows] == [(r["query_id"], r["doc_id"]) for r in local_rows]
    # Same engine, same shards-vs-chunks split (16 rows): the scores are the same floats.
    assert [float(r["score"]) for r in ray_rows] == [float(r["score"]) for r in local_rows]
