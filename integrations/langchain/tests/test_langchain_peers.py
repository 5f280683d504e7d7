"""What users of Cohere's and the community LangChain rerankers expect of Qwen3Rerank, and round trips.

The peers' packages (langchain-cohere ...) are not installed here; their documented shapes are pinned
from their source as comments say. Scores are compared with the core scorer on the same texts.
"""

from __future__ import annotations

import copy
import inspect
import pickle

import cloudpickle
import pytest
import yaml
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_qwen3_rerank import RELEVANCE_SCORE_KEY, Qwen3CrossEncoder, Qwen3Rerank
from pydantic import ValidationError

from qwen3_rerank.backends.vllm_backend import live_engine_count

pytestmark = pytest.mark.vllm

QUERY = "What is the capital of France?"
TEXTS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",
    "Photosynthesis happens in leaves.",
    "France is a country in Europe.",
]
FLOAT32 = {"dtype": "float32"}

# langchain_cohere.rerank.CohereRerank.rerank (langchain-cohere 0.4, libs/cohere/langchain_cohere/rerank.py):
#     def rerank(self, documents: Sequence[Union[str, Document, dict]], query: str, *,
#                rank_fields: Optional[Sequence[str]] = None, model: Optional[str] = None,
#                top_n: Optional[int] = -1, max_tokens_per_doc: Optional[int] = None) -> List[Dict[str, Any]]
#     top_n = top_n if (top_n is None or top_n > 0) else self.top_n; rows are {"index", "relevance_score"};
#     a dict is scored on yaml.dump({k: doc[k] for k in rank_fields if k in doc} or doc, sort_keys=False).
# max_tokens_per_doc is Cohere's truncation of each document; ours keeps about that many tokens of each
# (the chunk cutter's first chunk), and the reranker's max_length still applies.
COHERE_RERANK = [
    ("documents", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
    ("query", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
    ("rank_fields", inspect.Parameter.KEYWORD_ONLY, None),
    ("model", inspect.Parameter.KEYWORD_ONLY, None),
    ("top_n", inspect.Parameter.KEYWORD_ONLY, -1),
    ("max_tokens_per_doc", inspect.Parameter.KEYWORD_ONLY, None),
]
COHERE_ROW_KEYS = {"index", "relevance_score"}


def test_rerank_has_coheres_signature() -> None:
    for method in (Qwen3Rerank.rerank, Qwen3Rerank.arerank):
        params = list(inspect.signature(method).parameters.values())[1:]
        assert [(p.name, p.kind, p.default) for p in params] == COHERE_RERANK


def order(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: -scores[i])


async def test_rerank_order_defaults_and_rows(vllm_reranker) -> None:
    scores = vllm_reranker.score(QUERY, TEXTS)
    best = order(scores)
    compressor = Qwen3Rerank(reranker=vllm_reranker, top_n=2, score_threshold=0.999)

    default = compressor.rerank(TEXTS, QUERY)  # Cohere's top_n=-1: the compressor's top_n
    assert [r["index"] for r in default] == best[:2]
    assert all(set(r) >= COHERE_ROW_KEYS for r in default)
    assert [r["relevance_score"] for r in default] == [scores[i] for i in best[:2]]
    assert [r["index"] for r in compressor.rerank(TEXTS, QUERY, top_n=None)] == best  # threshold not applied
    assert [r["index"] for r in compressor.rerank(documents=TEXTS, query=QUERY, top_n=3)] == best[:3]
    assert compressor.rerank(TEXTS, QUERY, top_n=0) == default  # Cohere: top_n <= 0 is the compressor's
    assert await compressor.arerank(TEXTS, QUERY) == default
    assert compressor.rerank(TEXTS, QUERY, model=vllm_reranker.model) == default
    with pytest.raises(ValueError, match=r"scores with .* only; make another Qwen3Rerank\('other/model'\)"):
        compressor.rerank(TEXTS, QUERY, model="other/model")


def test_the_old_argument_order_names_the_fix(vllm_reranker) -> None:
    compressor = Qwen3Rerank(reranker=vllm_reranker)
    with pytest.raises(TypeError, match=r"takes \(documents, query\).*Call rerank\(documents, query\)"):
        compressor.rerank(QUERY, TEXTS)


def test_dict_documents_with_rank_fields_are_scored_as_cohere_does(vllm_reranker) -> None:
    docs = [
        {"title": "Paris", "body": "Paris is the capital of France.", "id": 7},
        {"body": "Berlin is the capital of Germany.", "title": "Berlin", "id": 8},
    ]
    before = copy.deepcopy(docs)
    compressor = Qwen3Rerank(reranker=vllm_reranker, top_n=None)
    rows = compressor.rerank(docs, QUERY, rank_fields=["title", "body"])
    texts = [yaml.dump({"title": d["title"], "body": d["body"]}, sort_keys=False) for d in docs]
    assert texts[0] == "title: Paris\nbody: Paris is the capital of France.\n"
    scores = vllm_reranker.score(QUERY, texts)
    assert sorted((r["index"], r["relevance_score"]) for r in rows) == [(0, scores[0]), (1, scores[1])]
    assert [r["document"] for r in rows] == [docs[i] for i in order(scores)]
    every_key = compressor.rerank(docs, QUERY)
    whole = vllm_reranker.score(QUERY, [yaml.dump(d, sort_keys=False) for d in docs])
    assert sorted(r["relevance_score"] for r in every_key) == sorted(whole)
    assert docs == before


def test_validation_as_the_peers_do(vllm_reranker) -> None:
    compressor = Qwen3Rerank(reranker=vllm_reranker, top_n="2", score_threshold="0.25")
    assert (compressor.top_n, compressor.score_threshold) == (2, 0.25)
    # Field types are pydantic's errors (issue 20 item 6), so `except ValidationError` catches a bad config.
    with pytest.raises(ValidationError, match=r"top_n\n  Input should be a valid integer, unable to parse string"):
        Qwen3Rerank(reranker=vllm_reranker, top_n="two")
    with pytest.raises(ValidationError, match=r"top_n\n  Input should be a valid integer"):
        Qwen3Rerank(reranker=vllm_reranker, top_n=[3])
    with pytest.raises(ValidationError, match=r"score_threshold\n  Input should be a valid number"):
        Qwen3Rerank(reranker=vllm_reranker, score_threshold=[0.5])
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\]"):
        Qwen3Rerank(reranker=vllm_reranker, score_threshold=2)

    # assignment is validated too
    compressor.top_n = "3"
    assert compressor.top_n == 3
    with pytest.raises(ValidationError, match="top_n"):
        compressor.top_n = "x"
    with pytest.raises(ValidationError, match=r"top_n must be >= 0 \(0 keeps nothing, None keeps all\), got -2"):
        compressor.top_n = -2
    assert compressor.top_n == 3
    with pytest.raises(ValidationError, match="frozen"):
        compressor.backend = "transformers"

    compressor.top_n = 0  # as the peers: nothing kept, nothing scored
    assert compressor.compress_documents([Document(page_content=t) for t in TEXTS], QUERY) == []

    with pytest.raises(ValidationError, match=r"topn\n  Extra inputs are not permitted"):
        Qwen3Rerank(reranker=vllm_reranker, topn=5)


def test_round_trips_keep_the_settings_and_share_the_engine(vllm_reranker, tiny_model_dir) -> None:
    engines = live_engine_count()
    # Settings that do not change the engine (max_length would: it caps the engine's context).
    original = Qwen3Rerank(
        str(tiny_model_dir), engine_options=FLOAT32, batch_size=3, tokenizer=str(tiny_model_dir), top_n=2
    )
    docs = [Document(page_content=t, id=str(i)) for i, t in enumerate(TEXTS)]
    expected = [(d.id, d.metadata[RELEVANCE_SCORE_KEY]) for d in original.compress_documents(docs, QUERY)]
    copies = [
        Qwen3Rerank.model_validate(original.model_dump()),
        Qwen3Rerank.model_validate_json(original.model_dump_json()),
        pickle.loads(pickle.dumps(original)),
        cloudpickle.loads(cloudpickle.dumps(original)),
        copy.deepcopy(original),
    ]
    try:
        assert live_engine_count() == engines, "a copy in the same process shares the live engine"
        for twin in copies:
            reranker = twin.reranker
            assert reranker is not original.reranker
            assert (reranker.backend.name, reranker.batch_size) == ("vllm", 3)
            assert (twin.tokenizer, twin.engine_options) == (str(tiny_model_dir), FLOAT32)
            assert twin.model_dump() == original.model_dump()
            assert [(d.id, d.metadata[RELEVANCE_SCORE_KEY]) for d in twin.compress_documents(docs, QUERY)] == expected
    finally:
        for twin in copies:
            twin.close()
    assert not original.reranker.closed
    original.close()


def test_a_passed_in_reranker_round_trips_to_the_same_settings(reference_reranker) -> None:
    compressor = Qwen3Rerank(reranker=reference_reranker, top_n=None)
    data = compressor.model_dump()
    assert (data["backend"], data["engine_options"], data["max_length"]) == (
        "transformers",
        {"dtype": "float32"},
        reference_reranker.max_length,
    )
    twin = pickle.loads(pickle.dumps(compressor))
    try:
        assert twin.reranker.backend.name == "transformers"
        docs = [Document(page_content=t) for t in TEXTS]
        assert [d.metadata for d in twin.compress_documents(docs, QUERY)] == [
            d.metadata for d in compressor.compress_documents(docs, QUERY)
        ]
    finally:
        twin.close()
    assert not reference_reranker.closed


def test_model_copy_does_not_copy_ownership(vllm_reranker, tiny_model_dir) -> None:
    original = Qwen3Rerank(str(tiny_model_dir), engine_options=FLOAT32, top_n=3)
    try:
        shallow = original.model_copy(update={"top_n": "1"})
        assert shallow.top_n == 1 and shallow.reranker is original.reranker
        shallow.close()
        assert not original.reranker.closed
        with pytest.raises(ValidationError, match="top_n"):
            original.model_copy(update={"top_n": "x"})
        other = original.model_copy(update={"batch_size": 2})
        assert other.reranker is not original.reranker and other.reranker.batch_size == 2
        other.close()
        assert other.reranker.closed and not original.reranker.closed
        assert original.compress_documents([Document(page_content=TEXTS[0])], QUERY)
    finally:
        original.close()
    assert original.reranker.closed and not vllm_reranker.closed


def test_cross_encoder_pickles_with_its_settings(reference_reranker) -> None:
    encoder = Qwen3CrossEncoder(reranker=reference_reranker, instruction="Find cities")
    pairs = [(QUERY, t) for t in TEXTS]
    for twin in (
        pickle.loads(pickle.dumps(encoder)),
        cloudpickle.loads(cloudpickle.dumps(encoder)),
        copy.deepcopy(encoder),
    ):
        assert twin.reranker is not reference_reranker and twin.instruction == "Find cities"
        assert twin.score(pairs) == encoder.score(pairs)
        twin.close()
    assert not reference_reranker.closed


def test_a_reranker_over_a_backend_object_refuses_to_pickle(reference_reranker, tiny_model_dir) -> None:
    from qwen3_rerank import Reranker

    shared = Reranker(str(tiny_model_dir), backend=reference_reranker.backend)
    compressor = Qwen3Rerank(reranker=shared)
    for attempt in (pickle.dumps, copy.deepcopy):
        with pytest.raises(TypeError, match=r"backend object .* cannot be pickled or copied.*backend='vllm'"):
            attempt(compressor)


def test_compressor_is_still_a_document_compressor(vllm_reranker) -> None:
    assert isinstance(Qwen3Rerank(reranker=vllm_reranker), BaseDocumentCompressor)


# -- Ray Data, which ships the compressor to its workers with cloudpickle ----------------------------


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 << 20, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_data_map_batches_with_the_compressor(local_ray, reference_reranker, tiny_model_dir) -> None:
    # The transformers backend: each worker reopens the reranker from the pickled settings in seconds.
    compressor = Qwen3Rerank(str(tiny_model_dir), backend="transformers", engine_options=FLOAT32, top_n=1)
    rows = [{"query": QUERY, "texts": TEXTS}, {"query": "Where do plants make sugar?", "texts": TEXTS}]

    def best(batch: dict) -> dict:
        tops = [
            compressor.compress_documents([Document(page_content=str(t)) for t in texts], str(query))[0]
            for query, texts in zip(batch["query"], batch["texts"], strict=True)
        ]
        return {
            "query": [str(q) for q in batch["query"]],
            "best": [d.page_content for d in tops],
            "score": [d.metadata[RELEVANCE_SCORE_KEY] for d in tops],
        }

    out = local_ray.data.from_items(rows).map_batches(best, batch_size=1, batch_format="pandas").take_all()
    got = sorted((r["query"], r["best"], r["score"]) for r in out)
    want = []
    for row in rows:
        scores = reference_reranker.score(row["query"], row["texts"])
        i = order(scores)[0]
        want.append((row["query"], row["texts"][i], scores[i]))
    assert got == sorted(want)
    compressor.close()
