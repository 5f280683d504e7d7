"""Qwen3Rerank and Qwen3CrossEncoder inside real LangChain retrievers (langchain-core + langchain-classic).

Every score is checked for exact equality against the shared vLLM reranker scoring the same texts in the
same order, so the adapters add nothing to (and lose nothing of) the core scorer.
"""

from __future__ import annotations

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_qwen3_rerank import RELEVANCE_SCORE_KEY, Qwen3CrossEncoder, Qwen3Rerank

from qwen3_rerank.backends.vllm_backend import live_engine_count

pytestmark = pytest.mark.vllm

CORPUS = [
    "Paris is the capital and most populous city of France.",
    "Berlin is the capital of Germany and its largest city.",
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
    "France is a country in Western Europe; its capital is Paris.",
    "Lyon is the third-largest city of France, known for its cuisine.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The capital of France moved to Versailles for part of the 17th century.",
    "Madrid is the capital of Spain and its largest city.",
]
QUERY = "What is the capital of France?"
RETRIEVE_K = 6
TOP_N = 3


@pytest.fixture(scope="module")
def retriever():
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=64))
    store.add_documents([Document(page_content=t, id=f"doc-{i}", metadata={"n": i}) for i, t in enumerate(CORPUS)])
    return store.as_retriever(search_kwargs={"k": RETRIEVE_K})


def expected(reranker, query: str, docs: list[Document], top_n: int | None):
    """(ids, scores) best first, from the core scorer alone on the same texts in the same order."""
    scores = reranker.score(query, [d.page_content for d in docs])
    order = sorted(range(len(docs)), key=lambda i: -scores[i])[:top_n]
    return [docs[i].id for i in order], [scores[i] for i in order]


def check_compressed(result: list[Document], retrieved: list[Document], vllm_reranker) -> None:
    ids, scores = expected(vllm_reranker, QUERY, retrieved, TOP_N)
    assert [d.id for d in retrieved[:TOP_N]] != ids, "the reranker should reorder here"
    assert [d.id for d in result] == ids
    assert [d.metadata[RELEVANCE_SCORE_KEY] for d in result] == scores
    assert all(type(d.metadata[RELEVANCE_SCORE_KEY]) is float for d in result)
    by_id = {d.id: d for d in retrieved}
    for doc in result:
        assert doc.page_content == by_id[doc.id].page_content
        assert doc.metadata == {**by_id[doc.id].metadata, RELEVANCE_SCORE_KEY: doc.metadata[RELEVANCE_SCORE_KEY]}


class Recorder(BaseCallbackHandler):
    """A real callback handler: records which retriever runs started and ended."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_retriever_start(self, serialized, query, **kwargs) -> None:
        self.calls.append(f"start:{query}")

    def on_retriever_end(self, documents, **kwargs) -> None:
        self.calls.append(f"end:{len(documents)}")


def test_contextual_compression_invoke(vllm_reranker, retriever) -> None:
    retrieved = retriever.invoke(QUERY)
    assert len(retrieved) == RETRIEVE_K
    pipeline = ContextualCompressionRetriever(
        base_compressor=Qwen3Rerank(reranker=vllm_reranker, top_n=TOP_N), base_retriever=retriever
    )
    handler = Recorder()

    result = pipeline.invoke(QUERY, config={"callbacks": [handler]})

    check_compressed(result, retrieved, vllm_reranker)
    assert handler.calls[0] == f"start:{QUERY}" and handler.calls[-1] == f"end:{TOP_N}"
    # The vector store's documents are untouched.
    assert all(RELEVANCE_SCORE_KEY not in d.metadata for d in retriever.invoke(QUERY))


async def test_contextual_compression_ainvoke(vllm_reranker, retriever) -> None:
    retrieved = await retriever.ainvoke(QUERY)
    pipeline = ContextualCompressionRetriever(
        base_compressor=Qwen3Rerank(reranker=vllm_reranker, top_n=TOP_N), base_retriever=retriever
    )
    check_compressed(await pipeline.ainvoke(QUERY), retrieved, vllm_reranker)


async def test_sync_and_async_compress_agree_and_do_not_mutate(vllm_reranker) -> None:
    docs = [Document(page_content=t, id=f"d{i}", metadata={"tags": ["x"]}) for i, t in enumerate(CORPUS)]
    before = [d.model_dump() for d in docs]
    compressor = Qwen3Rerank(reranker=vllm_reranker, top_n=None)

    sync = compressor.compress_documents(docs, QUERY)
    asynchronous = await compressor.acompress_documents(docs, QUERY, callbacks=[Recorder()])

    assert [(d.id, d.metadata) for d in sync] == [(d.id, d.metadata) for d in asynchronous]
    assert [d.model_dump() for d in docs] == before
    assert all(out is not d for out in sync for d in docs)
    ids, scores = expected(vllm_reranker, QUERY, docs, None)
    assert [d.id for d in sync] == ids and [d.metadata[RELEVANCE_SCORE_KEY] for d in sync] == scores


def test_score_threshold_then_top_n(vllm_reranker) -> None:
    docs = [Document(page_content=t, id=f"d{i}") for i, t in enumerate(CORPUS)]
    ids, scores = expected(vllm_reranker, QUERY, docs, None)
    assert len(set(scores)) == len(scores)
    threshold = scores[4]

    kept = Qwen3Rerank(reranker=vllm_reranker, top_n=None, score_threshold=threshold).compress_documents(docs, QUERY)
    assert [d.id for d in kept] == ids[:5]
    cut = Qwen3Rerank(reranker=vllm_reranker, top_n=2, score_threshold=threshold).compress_documents(docs, QUERY)
    assert [d.id for d in cut] == ids[:2]
    none = Qwen3Rerank(reranker=vllm_reranker, score_threshold=1.0).compress_documents(docs, QUERY)
    assert none == [] and max(scores) < 1.0


async def test_rerank_shape(vllm_reranker) -> None:
    texts = CORPUS[:5]
    docs = [Document(page_content=t, id=f"d{i}") for i, t in enumerate(texts)]
    scores = vllm_reranker.score(QUERY, texts)
    order = sorted(range(len(texts)), key=lambda i: -scores[i])
    compressor = Qwen3Rerank(reranker=vllm_reranker, top_n=1, score_threshold=0.99)

    rows = compressor.rerank(texts, QUERY, top_n=None)  # the compressor's threshold does not apply
    assert rows == [{"index": i, "relevance_score": scores[i], "document": texts[i]} for i in order]
    # Cohere's default top_n=-1: the compressor's own top_n
    assert compressor.rerank(texts, QUERY) == rows[:1]

    rows = await compressor.arerank(docs, QUERY, top_n=2)
    assert [set(r) for r in rows] == [{"index", "relevance_score", "document"}] * 2
    assert [r["index"] for r in rows] == order[:2]
    assert [r["relevance_score"] for r in rows] == [scores[i] for i in order[:2]]
    assert [r["document"].id for r in rows] == [f"d{i}" for i in order[:2]]
    assert all(r["document"].metadata == {RELEVANCE_SCORE_KEY: r["relevance_score"]} for r in rows)
    assert all(d.metadata == {} for d in docs)
    assert compressor.rerank([], QUERY) == []


async def test_empty_input_and_documents_without_text(vllm_reranker) -> None:
    compressor = Qwen3Rerank(reranker=vllm_reranker, top_n=None)
    assert compressor.compress_documents([], QUERY) == []
    assert await compressor.acompress_documents([], QUERY) == []

    docs = [
        Document(page_content="", id="empty-1"),
        Document(page_content="Paris is the capital of France.", id="paris"),
        Document(page_content="", id="empty-2"),
    ]
    scores = vllm_reranker.score(QUERY, ["", "Paris is the capital of France.", ""])
    out = compressor.compress_documents(docs, QUERY)
    assert sorted((d.id, d.metadata[RELEVANCE_SCORE_KEY]) for d in out) == sorted(
        zip(["empty-1", "paris", "empty-2"], scores, strict=True)
    )
    # Equal scores keep their input order.
    assert scores[0] == scores[2]
    ids = [d.id for d in out]
    assert ids.index("empty-1") < ids.index("empty-2")


def test_bad_input_is_a_clear_error(vllm_reranker) -> None:
    compressor = Qwen3Rerank(reranker=vllm_reranker)
    with pytest.raises(TypeError, match=r"documents\[1\] must be a Document.*Document\(page_content=text\)"):
        compressor.compress_documents([Document(page_content="a"), "b"], QUERY)
    with pytest.raises(TypeError, match="list of Document"):
        compressor.compress_documents(Document(page_content="a"), QUERY)
    with pytest.raises(TypeError, match="query must be a str"):
        compressor.compress_documents([Document(page_content="a")], None)
    with pytest.raises(TypeError, match=r"documents\[0\] must be a Document, a str or a dict"):
        compressor.rerank([3], QUERY)


def test_options_are_checked_before_any_engine_starts(vllm_reranker) -> None:
    engines = live_engine_count()
    with pytest.raises(ValueError, match="top_n must be >= 0"):
        Qwen3Rerank("no/such-model", top_n=-1)
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\]"):
        Qwen3Rerank("no/such-model", score_threshold=-0.1)
    with pytest.raises(ValueError, match="cannot apply to the reranker you passed"):
        Qwen3Rerank(reranker=vllm_reranker, backend="transformers")
    with pytest.raises(ValueError, match="differs from the reranker's model"):
        Qwen3CrossEncoder("another/model", reranker=vllm_reranker)
    with pytest.raises(TypeError, match=r"qwen3_rerank\.Reranker"):
        Qwen3CrossEncoder(reranker=object())
    assert live_engine_count() == engines


def test_compressors_share_one_engine(vllm_reranker, tiny_model_dir) -> None:
    engines = live_engine_count()
    first = Qwen3Rerank(reranker=vllm_reranker)
    encoder = Qwen3CrossEncoder(reranker=vllm_reranker)
    assert first.reranker is encoder.reranker is vllm_reranker
    first.close()
    encoder.close()
    assert not vllm_reranker.closed, "closing an adapter leaves a passed-in reranker open"

    # Built from the model name with the same options as the session reranker: no second engine.
    by_name = Qwen3Rerank(str(tiny_model_dir), engine_options={"dtype": "float32"}, top_n=None)
    try:
        assert live_engine_count() == engines
        docs = [Document(page_content=t) for t in CORPUS[:4]]
        assert sorted(d.metadata[RELEVANCE_SCORE_KEY] for d in by_name.compress_documents(docs, QUERY)) == sorted(
            vllm_reranker.score(QUERY, CORPUS[:4])
        )
    finally:
        by_name.close()
    assert by_name.reranker.closed and not vllm_reranker.closed


def test_cross_encoder_reranker_switch(vllm_reranker, retriever) -> None:
    encoder = Qwen3CrossEncoder(reranker=vllm_reranker)
    assert isinstance(encoder, BaseCrossEncoder)
    pairs = [(QUERY, t) for t in CORPUS]
    assert encoder.score(pairs) == vllm_reranker.score_pairs(pairs)

    retrieved = retriever.invoke(QUERY)
    classic = ContextualCompressionRetriever(
        base_compressor=CrossEncoderReranker(model=encoder, top_n=TOP_N), base_retriever=retriever
    ).invoke(QUERY)
    ours = ContextualCompressionRetriever(
        base_compressor=Qwen3Rerank(reranker=vllm_reranker, top_n=TOP_N), base_retriever=retriever
    ).invoke(QUERY)
    ids, _ = expected(vllm_reranker, QUERY, retrieved, TOP_N)
    assert [d.id for d in classic] == [d.id for d in ours] == ids


async def test_cross_encoder_async_and_instruction(vllm_reranker) -> None:
    pairs = [(QUERY, t) for t in CORPUS[:3]]
    encoder = Qwen3CrossEncoder(reranker=vllm_reranker, instruction="Find cities")
    assert await encoder.ascore(pairs) == vllm_reranker.score_pairs(pairs, instruction="Find cities")
    assert encoder.score(pairs) != vllm_reranker.score_pairs(pairs)

    compressor = Qwen3Rerank(reranker=vllm_reranker, top_n=None, instruction="Find cities")
    docs = [Document(page_content=t) for t in CORPUS[:3]]
    got = sorted(d.metadata[RELEVANCE_SCORE_KEY] for d in compressor.compress_documents(docs, QUERY))
    assert got == sorted(vllm_reranker.score(QUERY, CORPUS[:3], instruction="Find cities"))
