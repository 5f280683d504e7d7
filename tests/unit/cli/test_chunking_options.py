"""``--long-documents chunk`` on the command line: rank, score and eval (truncate vs chunk side by side)."""

from __future__ import annotations

import json

import pytest
from paths import FIXTURES

from qwen3_rerank.cli import main

MINI = FIXTURES / "beir-mini"
QUERY = "capital of France"
DOCS = ["Paris is the capital of France. " * 6, "Cats purr. " * 20 + "Paris is the capital of France.", "Short."]
MODEL_ARGS = ("--backend", "transformers", "--dtype", "float32")


def test_rank_chunk_mode_reports_the_winning_chunk(tiny_model_dir, reference_reranker, tmp_path, capfd) -> None:
    docs_file = tmp_path / "docs.jsonl"
    docs_file.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n")
    code = main(
        [
            "rank",
            QUERY,
            "-d",
            str(docs_file),
            "--model",
            str(tiny_model_dir),
            *MODEL_ARGS,
            "-f",
            "json",
            "--long-documents",
            "chunk",
            "--chunk-tokens",
            "16",
            "--chunk-overlap",
            "4",
        ]
    )
    assert code == 0
    rows = json.loads(capfd.readouterr().out)
    expected = reference_reranker.rank(QUERY, DOCS, long_documents="chunk", chunk_tokens=16, chunk_overlap=4)
    assert [r["index"] for r in rows] == [e.index for e in expected]
    assert [r["score"] for r in rows] == pytest.approx([e.score for e in expected], abs=1e-6)
    for row, e in zip(rows, expected, strict=True):
        assert e.best_chunk is not None
        assert row["chunk"] == {
            "index": e.best_chunk.index,
            "token_start": e.best_chunk.token_start,
            "token_end": e.best_chunk.token_end,
            "char_start": e.best_chunk.char_start,
            "char_end": e.best_chunk.char_end,
        }


def test_rank_bad_mode_and_too_many_chunks_are_one_line_errors(tiny_model_dir, tmp_path, capfd) -> None:
    docs_file = tmp_path / "docs.txt"
    docs_file.write_text("\n".join(DOCS) + "\n")
    base = ["rank", QUERY, "-d", str(docs_file), "--model", str(tiny_model_dir), *MODEL_ARGS]
    assert main([*base, "--long-documents", "truncate,chunk"]) == 2
    assert "--long-documents takes one mode here" in capfd.readouterr().err
    assert main([*base, "--long-documents", "chunk", "--chunk-tokens", "16", "--max-chunks", "2"]) == 2
    [error] = [line for line in capfd.readouterr().err.splitlines() if line.startswith("qwen3-rerank: error:")]
    assert "document 0 needs" in error and "more than max_chunks=2" in error


def test_score_file_in_chunk_mode(tiny_model_dir, reference_reranker, tmp_path, capfd) -> None:
    source, scored = tmp_path / "pairs.jsonl", tmp_path / "scored.jsonl"
    source.write_text("".join(json.dumps({"query": QUERY, "document": d}) + "\n" for d in DOCS))
    code = main(
        [
            "score",
            str(source),
            "-o",
            str(scored),
            "--model",
            str(tiny_model_dir),
            *MODEL_ARGS,
            "--no-progress",
            "--long-documents",
            "chunk",
            "--chunk-tokens",
            "16",
        ]
    )
    assert code == 0, capfd.readouterr().err
    got = [json.loads(line)["score"] for line in scored.read_text().splitlines()]
    expected = reference_reranker.score(QUERY, DOCS, long_documents="chunk", chunk_tokens=16)
    assert got == pytest.approx(expected, abs=1e-6)
    assert got != pytest.approx(reference_reranker.score(QUERY, DOCS), abs=1e-6)


def test_eval_compares_truncate_and_chunk(tiny_model_dir, tmp_path, capfd) -> None:
    pytest.importorskip("ranx")
    common = [
        "eval",
        str(MINI),
        "--run",
        str(MINI / "first-stage.trec"),
        "-k",
        "3",
        "--model",
        str(tiny_model_dir),
        *MODEL_ARGS,
        "--no-progress",
        "--chunk-tokens",
        "8",
    ]
    assert main([*common, "-o", str(tmp_path / "t.trec"), "--report", str(tmp_path / "t.json")]) == 0
    assert (
        main(
            [*common, "--long-documents", "chunk", "-o", str(tmp_path / "c.trec"), "--report", str(tmp_path / "c.json")]
        )
        == 0
    )
    capfd.readouterr()
    assert (
        main(
            [
                *common,
                "--long-documents",
                "truncate,chunk",
                "-o",
                str(tmp_path / "both.trec"),
                "--report",
                str(tmp_path / "both.json"),
            ]
        )
        == 0
    )
    out = capfd.readouterr().out.splitlines()
    assert out[0].split() == ["metric", "first", "stage", "truncate", "delta", "chunk", "delta"]
    both = json.loads((tmp_path / "both.json").read_text())
    alone = {mode: json.loads((tmp_path / f"{mode[0]}.json").read_text()) for mode in ("truncate", "chunk")}
    for mode in ("truncate", "chunk"):
        assert both[mode]["overall"] == alone[mode]["overall"]
        assert (tmp_path / f"both.{mode}.trec").read_text() == (tmp_path / f"{mode[0]}.trec").read_text()
    ndcg = next(line for line in out if line.startswith("NDCG@10")).split()
    assert float(ndcg[2]) == pytest.approx(both["truncate"]["overall"]["ndcg@10"]["after"], abs=5e-5)
    assert float(ndcg[4]) == pytest.approx(both["chunk"]["overall"]["ndcg@10"]["after"], abs=5e-5)


# -- the Ray job: the options reach every actor's Reranker ---------------------------------------------


def test_ray_actor_scores_in_chunk_mode(tiny_model_dir, reference_reranker) -> None:
    from qwen3_rerank import RerankerSettings
    from qwen3_rerank.files.ray_runner import BlockScorer

    settings = RerankerSettings.create(
        str(tiny_model_dir),
        backend="transformers",
        engine_options={"dtype": "float32"},
        instruction=reference_reranker.instruction,
        max_length=8192,
        batch_size=64,
        long_documents="chunk",
        chunk_tokens=16,
        chunk_overlap=4,
    )
    scorer = BlockScorer(settings, {})  # the actor's class, here in this process
    try:
        got = scorer.score([(QUERY, document) for document in DOCS])
    finally:
        scorer.close()
    expected = reference_reranker.score(QUERY, DOCS, long_documents="chunk", chunk_tokens=16, chunk_overlap=4)
    assert got == pytest.approx(expected, abs=1e-6)


def test_batch_checks_chunk_options_before_any_work(tmp_path, capfd) -> None:
    source = tmp_path / "p.jsonl"
    source.write_text(json.dumps({"query_id": "q", "doc_id": "d", "query": QUERY, "document": "x"}) + "\n")
    out = tmp_path / "o.jsonl"
    argv = ["batch", str(source), str(out), "--model", "m", "--long-documents", "chunk", "--chunk-tokens", "16"]
    assert main([*argv, "--chunk-overlap", "16"]) == 2
    assert "chunk_overlap=16 must be smaller than chunk_tokens=16" in capfd.readouterr().err
    assert not out.exists() and not (tmp_path / "o.jsonl.manifest.json").exists()
