"""Qwen3Rerank in chunk mode: scores are the core's chunk-mode scores, the winning chunk is in the copies'
metadata (hidden from LLM and embedder), the nodes passed in stay as they were."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.qwen3_rerank import CHUNK_KEY, RETRIEVAL_SCORE_KEY, Qwen3Rerank

QUERY = "What is the capital of France?"
TEXTS = ["Cats purr. " * 30 + "Paris is the capital of France.", "Berlin is in Germany.", "Bread. " * 50]
OPTIONS = {"long_documents": "chunk", "chunk_tokens": 24, "chunk_overlap": 6}


def nodes() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=0.1 * i) for i, t in enumerate(TEXTS)]


def test_chunk_mode_scores_and_metadata(reference_reranker) -> None:
    post = Qwen3Rerank(reranker=reference_reranker, top_n=None, keep_retrieval_score=True, **OPTIONS)
    given = nodes()
    out = post.postprocess_nodes(given, query_bundle=QueryBundle(QUERY))
    expected = reference_reranker.rank(QUERY, TEXTS, **OPTIONS)
    assert [o.node.node_id for o in out] == [f"n{e.index}" for e in expected]
    assert [o.score for o in out] == [e.score for e in expected]
    for o, e in zip(out, expected, strict=True):
        chunk = o.node.metadata[CHUNK_KEY]
        assert e.best_chunk is not None
        assert chunk == {
            "index": e.best_chunk.index,
            "score": e.best_chunk.score,
            "token_start": e.best_chunk.token_start,
            "token_end": e.best_chunk.token_end,
            "char_start": e.best_chunk.char_start,
            "char_end": e.best_chunk.char_end,
        }
        assert o.node.metadata[RETRIEVAL_SCORE_KEY] == pytest.approx(0.1 * e.index)
        assert CHUNK_KEY in o.node.excluded_llm_metadata_keys and CHUNK_KEY in o.node.excluded_embed_metadata_keys
        assert CHUNK_KEY not in o.node.get_content(metadata_mode=MetadataMode.LLM)
    assert all(n.node.metadata == {} and n.node.excluded_llm_metadata_keys == [] for n in given)
    assert max(len(c) for c in reference_reranker.score_chunks(QUERY, TEXTS, chunk_tokens=24)) > 1
    again = asyncio.run(post.apostprocess_nodes(nodes(), query_bundle=QueryBundle(QUERY)))
    assert [(o.node.node_id, o.score, o.node.metadata) for o in again] == [
        (o.node.node_id, o.score, o.node.metadata) for o in out
    ]


def test_truncate_mode_adds_no_chunk_metadata(reference_reranker) -> None:
    out = Qwen3Rerank(reranker=reference_reranker, top_n=None).postprocess_nodes(nodes(), query_str=QUERY)
    assert all(CHUNK_KEY not in o.node.metadata for o in out)
    assert [o.score for o in out] == [r.score for r in reference_reranker.rank(QUERY, TEXTS)]


def test_bad_chunk_options_fail_at_construction(reference_reranker) -> None:
    with pytest.raises(ValueError, match="chunk_overlap=30 must be smaller than chunk_tokens=20"):
        Qwen3Rerank(reranker=reference_reranker, long_documents="chunk", chunk_tokens=20, chunk_overlap=30)
    with pytest.raises(ValueError, match="long_documents must be 'truncate' or 'chunk'"):
        Qwen3Rerank(reranker=reference_reranker, long_documents="pieces")
