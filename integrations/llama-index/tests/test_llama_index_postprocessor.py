"""Qwen3Rerank inside real LlamaIndex pipelines: BM25 retriever, query engine, MockLLM, real handlers.

Every score is checked for exact equality against the shared vLLM reranker scoring the same texts in the
same order, so the adapter is proven to add nothing to (and lose nothing of) the core scorer.
"""

from __future__ import annotations

import pytest
from llama_index.core import Document
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, Node, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.qwen3_rerank import RETRIEVAL_SCORE_KEY, Qwen3Rerank
from llama_index.retrievers.bm25 import BM25Retriever
from pydantic import Field

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


class Recorder(BaseEventHandler):
    """A real instrumentation event handler that keeps every event it sees."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event: BaseEvent, **kwargs) -> None:
        self.events.append(event)

    def of(self, kind: type[BaseEvent]) -> list[BaseEvent]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def recorder():
    root = get_dispatcher()
    handler = Recorder()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)


@pytest.fixture
def spans():
    root = get_dispatcher()
    handler = SimpleSpanHandler()
    root.add_span_handler(handler)
    yield handler
    root.span_handlers.remove(handler)


@pytest.fixture(scope="module")
def nodes():
    documents = [Document(text=text, metadata={"source": f"doc-{i}"}) for i, text in enumerate(CORPUS)]
    return SentenceSplitter(chunk_size=256).get_nodes_from_documents(documents)


@pytest.fixture(scope="module")
def retriever(nodes):
    return BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=RETRIEVE_K)


def expected_ranking(reranker, query: str, items: list[NodeWithScore], top_n: int | None, mode=MetadataMode.EMBED):
    """(node ids, scores) best first, computed from the core scorer alone on the same texts."""
    scores = reranker.score(query, [item.node.get_content(metadata_mode=mode) for item in items])
    order = sorted(range(len(items)), key=lambda i: -scores[i])[:top_n]
    return [items[i].node.node_id for i in order], [scores[i] for i in order]


def engine(retriever, postprocessor, debug: LlamaDebugHandler | None = None) -> RetrieverQueryEngine:
    return RetrieverQueryEngine.from_args(
        retriever,
        llm=MockLLM(),  # echoes its prompt, so the response shows exactly what the LLM was given
        node_postprocessors=[postprocessor],
        callback_manager=CallbackManager([debug] if debug else []),
    )


def check_pipeline_result(response, retrieved, vllm_reranker, recorder) -> None:
    ids, scores = expected_ranking(vllm_reranker, QUERY, retrieved, TOP_N)
    assert [n.node.node_id for n in retrieved[:TOP_N]] != ids, "the reranker should reorder here"
    assert [n.node.node_id for n in response.source_nodes] == ids
    assert [n.score for n in response.source_nodes] == scores
    assert all(type(n.score) is float for n in response.source_nodes)

    (start,) = recorder.of(ReRankStartEvent)
    (end,) = recorder.of(ReRankEndEvent)
    assert start.top_n == TOP_N and start.model_name == vllm_reranker.model
    assert [n.node.node_id for n in start.nodes] == [n.node.node_id for n in retrieved]
    # The very objects the postprocessor returned are the ones handed to the synthesizer.
    assert [id(n) for n in end.nodes] == [id(n) for n in response.source_nodes]

    # keep_retrieval_score: the BM25 score is kept, but hidden from the LLM prompt and the embedder.
    for out in response.source_nodes:
        (src,) = [n for n in retrieved if n.node.node_id == out.node.node_id]
        assert out.node.metadata[RETRIEVAL_SCORE_KEY] == src.score
        assert RETRIEVAL_SCORE_KEY not in out.node.get_content(metadata_mode=MetadataMode.LLM)
        assert RETRIEVAL_SCORE_KEY not in out.node.get_content(metadata_mode=MetadataMode.EMBED)
    prompt = str(response)
    assert RETRIEVAL_SCORE_KEY not in prompt
    positions = [prompt.index(n.node.get_content(metadata_mode=MetadataMode.NONE)) for n in response.source_nodes]
    assert positions == sorted(positions), "the LLM sees the nodes best first"
    # The retriever's own nodes were not touched.
    assert all(RETRIEVAL_SCORE_KEY not in n.node.metadata for n in retrieved)


def test_query_engine_query(vllm_reranker, retriever, recorder) -> None:
    debug = LlamaDebugHandler()
    postprocessor = Qwen3Rerank(reranker=vllm_reranker, top_n=TOP_N, keep_retrieval_score=True)
    retrieved = retriever.retrieve(QUERY)
    assert len(retrieved) == RETRIEVE_K

    response = engine(retriever, postprocessor, debug).query(QUERY)

    check_pipeline_result(response, retrieved, vllm_reranker, recorder)
    (pair,) = debug.get_event_pairs(CBEventType.RERANKING)
    assert pair[0].payload[EventPayload.TOP_K] == TOP_N
    assert pair[0].payload[EventPayload.QUERY_STR] == QUERY
    assert pair[0].payload[EventPayload.MODEL_NAME] == vllm_reranker.model
    assert pair[1].payload[EventPayload.NODES] == response.source_nodes


async def test_query_engine_aquery_is_natively_async_and_traced(vllm_reranker, retriever, recorder, spans) -> None:
    postprocessor = Qwen3Rerank(reranker=vllm_reranker, top_n=TOP_N, keep_retrieval_score=True)
    retrieved = await retriever.aretrieve(QUERY)

    response = await engine(retriever, postprocessor).aquery(QUERY)

    check_pipeline_result(response, retrieved, vllm_reranker, recorder)
    span_ids = [s.id_ for s in spans.completed_spans]
    ours = [s for s in span_ids if s.startswith("Qwen3Rerank._apostprocess_nodes-")]
    assert len(ours) == 1, span_ids
    # Both events were emitted inside our async span, so tracing tools attribute them to the reranker.
    assert recorder.of(ReRankStartEvent)[0].span_id == ours[0]
    assert recorder.of(ReRankEndEvent)[0].span_id == ours[0]


def test_postprocess_nodes_directly_with_threshold(vllm_reranker, retriever) -> None:
    retrieved = retriever.retrieve(QUERY)
    _, all_scores = expected_ranking(vllm_reranker, QUERY, retrieved, None)
    threshold = all_scores[2]  # keeps exactly the best three (scores are distinct here)
    assert len(set(all_scores)) == len(all_scores)

    kept = Qwen3Rerank(reranker=vllm_reranker, top_n=None, score_threshold=threshold).postprocess_nodes(
        retrieved, query_str=QUERY
    )
    assert [n.score for n in kept] == all_scores[:3]
    assert all(n.score >= threshold for n in kept)

    everything = Qwen3Rerank(reranker=vllm_reranker, top_n=None).postprocess_nodes(retrieved, query_str=QUERY)
    assert [n.score for n in everything] == all_scores
    # Without keep_retrieval_score the node objects are passed through untouched (not copies).
    assert {id(n.node) for n in everything} == {id(n.node) for n in retrieved}


async def test_sync_and_async_agree(vllm_reranker, retriever) -> None:
    retrieved = retriever.retrieve(QUERY)
    postprocessor = Qwen3Rerank(reranker=vllm_reranker, top_n=4)
    sync = postprocessor.postprocess_nodes(retrieved, query_bundle=QueryBundle(QUERY))
    asynchronous = await postprocessor.apostprocess_nodes(retrieved, query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in sync] == [(n.node.node_id, n.score) for n in asynchronous]


def test_every_node_type_and_nodes_without_text(vllm_reranker) -> None:
    items = [
        NodeWithScore(node=TextNode(text="Paris is the capital of France.", id_="text"), score=1.0),
        # Document and Node are not TextNodes: NodeWithScore.text raises for them.
        NodeWithScore(node=Document(text="Lyon is in France.", metadata={"city": "Lyon"}, id_="doc"), score=0.5),
        NodeWithScore(node=Node(id_="no-text"), score=0.25),
        NodeWithScore(node=TextNode(text="", id_="empty"), score=None),
    ]
    scored_texts = ["Paris is the capital of France.", "city: Lyon\n\nLyon is in France.", "", ""]
    scores = vllm_reranker.score(QUERY, scored_texts)

    out = Qwen3Rerank(reranker=vllm_reranker, top_n=None).postprocess_nodes(items, query_str=QUERY)

    assert sorted((n.node.node_id, n.score) for n in out) == sorted(
        zip(["text", "doc", "no-text", "empty"], scores, strict=True)
    )
    assert [n.score for n in out] == sorted(scores, reverse=True)
    # The two empty texts score the same and keep their input order.
    assert scores[2] == scores[3]
    ids = [n.node.node_id for n in out]
    assert ids.index("no-text") < ids.index("empty")

    plain = Qwen3Rerank(reranker=vllm_reranker, top_n=None, metadata_mode=MetadataMode.NONE)
    plain_scores = vllm_reranker.score(QUERY, ["Paris is the capital of France.", "Lyon is in France.", "", ""])
    assert sorted(n.score for n in plain.postprocess_nodes(items, query_str=QUERY)) == sorted(plain_scores)


def test_ties_keep_input_order_and_inputs_are_not_mutated(vllm_reranker) -> None:
    texts = ["Berlin is in Germany.", "Paris is in France.", "Berlin is in Germany.", "Paris is in France."]
    items = [
        NodeWithScore(
            node=TextNode(
                text=t,
                id_=f"n{i}",
                metadata={"k": i},
                excluded_llm_metadata_keys=["k"],
                excluded_embed_metadata_keys=["k"],
            ),
            score=i,
        )
        for i, t in enumerate(texts)
    ]
    before = [item.model_dump() for item in items]

    out = Qwen3Rerank(reranker=vllm_reranker, top_n=None, keep_retrieval_score=True).postprocess_nodes(
        items, query_str=QUERY
    )

    scores = vllm_reranker.score(QUERY, texts)
    assert scores[0] == scores[2] and scores[1] == scores[3]
    best, worst = ("n1", "n3"), ("n0", "n2")
    if scores[0] > scores[1]:
        best, worst = worst, best
    assert [n.node.node_id for n in out] == [*best, *worst]
    assert [item.model_dump() for item in items] == before
    assert all(n is not items[int(n.node.node_id[1])] and n.node is not items[int(n.node.node_id[1])].node for n in out)
    for n in out:
        assert n.node.metadata == {"k": int(n.node.node_id[1]), RETRIEVAL_SCORE_KEY: int(n.node.node_id[1])}
        assert n.node.excluded_llm_metadata_keys == ["k", RETRIEVAL_SCORE_KEY]
        assert n.node.excluded_embed_metadata_keys == ["k", RETRIEVAL_SCORE_KEY]


async def test_empty_input_returns_empty_with_matched_events(vllm_reranker, recorder) -> None:
    debug = LlamaDebugHandler()
    postprocessor = Qwen3Rerank(reranker=vllm_reranker, callback_manager=CallbackManager([debug]))

    assert postprocessor.postprocess_nodes([], query_str=QUERY) == []
    assert await postprocessor.apostprocess_nodes([], query_str=QUERY) == []

    assert len(recorder.of(ReRankStartEvent)) == len(recorder.of(ReRankEndEvent)) == 2
    assert all(e.nodes == [] for e in recorder.of(ReRankEndEvent))
    assert all(isinstance(e.top_n, int) for e in recorder.of(ReRankStartEvent))
    pairs = debug.get_event_pairs(CBEventType.RERANKING)
    assert len(pairs) == 2 and all(end.payload[EventPayload.NODES] == [] for _, end in pairs)


def test_top_n_none_is_reported_as_an_int(vllm_reranker, recorder) -> None:
    items = [NodeWithScore(node=TextNode(text=t)) for t in CORPUS[:5]]
    Qwen3Rerank(reranker=vllm_reranker, top_n=None).postprocess_nodes(items, query_str=QUERY)
    assert recorder.of(ReRankStartEvent)[0].top_n == 5


async def test_no_query_is_a_clear_error_and_emits_nothing(vllm_reranker, recorder) -> None:
    postprocessor = Qwen3Rerank(reranker=vllm_reranker)
    items = [NodeWithScore(node=TextNode(text="x"))]
    with pytest.raises(ValueError, match="needs the query"):
        postprocessor.postprocess_nodes(items)
    with pytest.raises(ValueError, match="needs the query"):
        await postprocessor.apostprocess_nodes(items)
    with pytest.raises(TypeError, match=r"nodes\[0\] must be a NodeWithScore"):
        postprocessor.postprocess_nodes([TextNode(text="x")], query_str=QUERY)
    assert recorder.of(ReRankStartEvent) == []


def test_options_are_checked_before_any_engine_starts(vllm_reranker) -> None:
    engines = live_engine_count()
    with pytest.raises(ValueError, match="top_n must be >= 0"):
        Qwen3Rerank("no/such-model", top_n=-1)
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\]"):
        Qwen3Rerank("no/such-model", score_threshold=1.5)
    with pytest.raises(ValueError, match="cannot apply to the reranker you passed"):
        Qwen3Rerank(reranker=vllm_reranker, engine_options={"dtype": "float32"})
    with pytest.raises(ValueError, match="differs from the reranker's model"):
        Qwen3Rerank("another/model", reranker=vllm_reranker)
    with pytest.raises(TypeError, match=r"qwen3_rerank\.Reranker"):
        Qwen3Rerank(reranker="not a reranker")
    assert live_engine_count() == engines


def test_postprocessors_share_one_engine(vllm_reranker, tiny_model_dir) -> None:
    engines = live_engine_count()
    first, second = Qwen3Rerank(reranker=vllm_reranker), Qwen3Rerank(reranker=vllm_reranker, top_n=5)
    assert first.reranker is second.reranker is vllm_reranker
    first.close()
    assert not vllm_reranker.closed, "closing a postprocessor leaves a passed-in reranker open"

    # Built from the model name with the same options as the session reranker: no second engine.
    by_name = Qwen3Rerank(str(tiny_model_dir), engine_options={"dtype": "float32"}, top_n=None)
    try:
        assert live_engine_count() == engines
        items = [NodeWithScore(node=TextNode(text=t)) for t in CORPUS[:4]]
        assert sorted(n.score for n in by_name.postprocess_nodes(items, query_str=QUERY)) == sorted(
            vllm_reranker.score(QUERY, CORPUS[:4])
        )
    finally:
        by_name.close()
    assert by_name.reranker.closed and not vllm_reranker.closed
    assert live_engine_count() == engines


def test_class_name_and_serialisation(vllm_reranker) -> None:
    postprocessor = Qwen3Rerank(reranker=vllm_reranker, top_n=4, score_threshold=0.5, instruction="Find cities")
    assert Qwen3Rerank.class_name() == "Qwen3Rerank"
    data = postprocessor.to_dict()
    assert data["class_name"] == "Qwen3Rerank"
    assert {k: data[k] for k in ("model", "top_n", "score_threshold", "instruction")} == {
        "model": vllm_reranker.model,
        "top_n": 4,
        "score_threshold": 0.5,
        "instruction": "Find cities",
    }


def test_instruction_reaches_the_scorer(vllm_reranker) -> None:
    items = [NodeWithScore(node=TextNode(text=t)) for t in CORPUS[:3]]
    out = Qwen3Rerank(reranker=vllm_reranker, top_n=None, instruction="Find cities").postprocess_nodes(
        items, query_str=QUERY
    )
    assert sorted(n.score for n in out) == sorted(vllm_reranker.score(QUERY, CORPUS[:3], instruction="Find cities"))
    assert sorted(n.score for n in out) != sorted(vllm_reranker.score(QUERY, CORPUS[:3]))
