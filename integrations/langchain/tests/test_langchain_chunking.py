"""Qwen3Rerank (LangChain) in chunk mode: the core's chunk-mode scores, the winning chunk in the copies'
metadata, the documents passed in untouched."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import Document
from langchain_qwen3_rerank import CHUNK_KEY, RELEVANCE_SCORE_KEY, Qwen3Rerank

QUERY = "What is the capital of France?"
TEXTS = ["Cats purr. " * 30 + "Paris is the capital of France.", "Berlin is in Germany.", "Bread. " * 50]
OPTIONS = {"long_documents": "chunk", "chunk_tokens": 24, "chunk_overlap": 6}


def documents() -> list[Document]:
    return [Document(page_content=t, id=f"d{i}", metadata={"source": i}) for i, t in enumerate(TEXTS)]


def test_chunk_mode_scores_and_metadata(reference_reranker) -> None:
    compressor = Qwen3Rerank(reranker=reference_reranker, top_n=None, **OPTIONS)
    given = documents()
    out = compressor.compress_documents(given, QUERY)
    expected = reference_reranker.rank(QUERY, TEXTS, **OPTIONS)
    assert [d.id for d in out] == [f"d{e.index}" for e in expected]
    for d, e in zip(out, expected, strict=True):
        assert e.best_chunk is not None
        assert d.metadata[RELEVANCE_SCORE_KEY] == e.score and d.metadata["source"] == e.index
        assert d.metadata[CHUNK_KEY] == {
            "index": e.best_chunk.index,
            "score": e.best_chunk.score,
            "token_start": e.best_chunk.token_start,
            "token_end": e.best_chunk.token_end,
            "char_start": e.best_chunk.char_start,
            "char_end": e.best_chunk.char_end,
        }
        span = d.metadata[CHUNK_KEY]
        assert d.page_content[span["char_start"] : span["char_end"]] in d.page_content
    assert all(d.metadata == {"source": i} for i, d in enumerate(given))
    again = asyncio.run(compressor.acompress_documents(documents(), QUERY))
    assert [(d.id, d.metadata) for d in again] == [(d.id, d.metadata) for d in out]
    rows = compressor.rerank(TEXTS, QUERY)
    assert [(r["index"], r["relevance_score"]) for r in rows] == [(e.index, e.score) for e in expected]


def test_truncate_mode_adds_no_chunk_metadata(reference_reranker) -> None:
    out = Qwen3Rerank(reranker=reference_reranker, top_n=None).compress_documents(documents(), QUERY)
    assert all(CHUNK_KEY not in d.metadata for d in out)


def test_bad_chunk_options_fail_at_construction(reference_reranker) -> None:
    with pytest.raises(ValueError, match="chunk_overlap=30 must be smaller than chunk_tokens=20"):
        Qwen3Rerank(reranker=reference_reranker, long_documents="chunk", chunk_tokens=20, chunk_overlap=30)
