"""Property tests of both adapters over the session engine: every node/document comes back exactly once,
with its own score (the core's), ``top_n``/``score_threshold`` as in ``Reranker.rank``, equal scores in
input order, inputs untouched; async equals sync.

Documents are short here (the cut semantics are compared exactly with a second call, see
tests/unit/test_reranker_properties.py); the core properties cover huge ones. Long run: ``HYPOTHESIS_PROFILE=long``.
"""

from __future__ import annotations

import asyncio
import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import close, documents, prop_settings, queries

pytestmark = pytest.mark.vllm

top_ns = st.one_of(st.none(), st.integers(1, 15))
thresholds = st.one_of(st.none(), st.just(0.0), st.floats(0.0, 1.0))
plain_queries = queries.map(lambda q: q if isinstance(q, str) else q[1])  # the adapters take a str query


def expected_order(reranker, query: str, texts: list[str], top_n, threshold) -> list[int]:
    return [r.index for r in reranker.rank(query, texts, top_n=top_n, threshold=threshold)]


# -- LlamaIndex --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama():
    pytest.importorskip("llama_index.postprocessor.qwen3_rerank")
    from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
    from llama_index.postprocessor.qwen3_rerank import Qwen3Rerank

    return Qwen3Rerank, NodeWithScore, TextNode, MetadataMode


def llama_nodes(llama, texts: list[str]):
    _, NodeWithScore, TextNode, _ = llama
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"node-{i}", metadata={"i": i}), score=float(i))
        for i, t in enumerate(texts)
    ]


@prop_settings(25)
@given(query=plain_queries, texts=documents(allow_huge=False), top_n=top_ns, threshold=thresholds)
def test_llama_index_postprocessor(llama, vllm_reranker, query, texts, top_n, threshold) -> None:
    Qwen3Rerank, MetadataMode = llama[0], llama[3]
    nodes = llama_nodes(llama, texts)
    before = copy.deepcopy(nodes)
    # what is scored: the text the embedder saw (metadata included, the adapter's default)
    scored = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    post = Qwen3Rerank(reranker=vllm_reranker, top_n=top_n, score_threshold=threshold)

    every = Qwen3Rerank(reranker=vllm_reranker, top_n=None).postprocess_nodes(nodes, query_str=query)
    # every node exactly once, with its own text and the core's score for it
    assert sorted(n.node.node_id for n in every) == sorted(f"node-{i}" for i in range(len(texts)))
    scores = vllm_reranker.score(query, scored)
    for out in every:
        i = int(out.node.node_id.split("-")[1])
        assert out.node.get_content() == texts[i]
        assert type(out.score) is float and 0.0 <= out.score <= 1.0
        assert abs(out.score - scores[i]) <= 1e-5
    ordered = [int(n.node.node_id.split("-")[1]) for n in every]
    assert ordered == expected_order(vllm_reranker, query, scored, None, None)

    cut = post.postprocess_nodes(nodes, query_str=query)
    assert [int(n.node.node_id.split("-")[1]) for n in cut] == expected_order(
        vllm_reranker, query, scored, top_n, threshold
    )
    acut = asyncio.run(post.apostprocess_nodes(nodes, query_str=query))
    assert [n.node.node_id for n in acut] == [n.node.node_id for n in cut]
    assert close([n.score for n in acut], [n.score for n in cut])
    # the nodes passed in are as they were
    assert [(n.node.node_id, n.node.get_content(), n.node.metadata, n.score) for n in nodes] == [
        (n.node.node_id, n.node.get_content(), n.node.metadata, n.score) for n in before
    ]


# -- LangChain ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def langchain():
    pytest.importorskip("langchain_qwen3_rerank")
    from langchain_core.documents import Document
    from langchain_qwen3_rerank import RELEVANCE_SCORE_KEY, Qwen3Rerank

    return Qwen3Rerank, Document, RELEVANCE_SCORE_KEY


@prop_settings(25)
@given(query=plain_queries, texts=documents(allow_huge=False), top_n=top_ns, threshold=thresholds)
def test_langchain_compressor(langchain, vllm_reranker, query, texts, top_n, threshold) -> None:
    Qwen3Rerank, Document, KEY = langchain
    docs = [Document(page_content=t, id=f"doc-{i}", metadata={"i": i}) for i, t in enumerate(texts)]
    before = copy.deepcopy(docs)
    compressor = Qwen3Rerank(reranker=vllm_reranker, top_n=top_n, score_threshold=threshold)

    every = Qwen3Rerank(reranker=vllm_reranker, top_n=None).compress_documents(docs, query)
    assert sorted(d.id for d in every) == sorted(f"doc-{i}" for i in range(len(texts)))
    scores = vllm_reranker.score(query, texts)
    for out in every:
        i = out.metadata["i"]
        assert out.page_content == texts[i] and out.id == f"doc-{i}"
        assert type(out.metadata[KEY]) is float and abs(out.metadata[KEY] - scores[i]) <= 1e-5
    assert [d.metadata["i"] for d in every] == expected_order(vllm_reranker, query, texts, None, None)

    cut = compressor.compress_documents(docs, query)
    assert [d.metadata["i"] for d in cut] == expected_order(vllm_reranker, query, texts, top_n, threshold)
    acut = asyncio.run(compressor.acompress_documents(docs, query))
    assert [d.id for d in acut] == [d.id for d in cut]

    # the Cohere-style rerank(): every string once, index and score
    rows = compressor.rerank(texts, query, top_n=None)
    assert sorted(row["index"] for row in rows) == list(range(len(texts)))
    assert all(row["document"] == texts[row["index"]] for row in rows)
    assert [row["index"] for row in rows] == expected_order(vllm_reranker, query, texts, None, None)
    assert docs == before and all(KEY not in d.metadata for d in docs)
