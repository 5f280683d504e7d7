"""What a new user hit with the LangChain adapter (issue 20): empty queries, field types, Cohere's
``rerank`` arguments, device spellings. No vLLM here: the transformers reference reranker scores.
"""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_qwen3_rerank import Qwen3CrossEncoder, Qwen3Rerank
from pydantic import ValidationError

from qwen3_rerank import Qwen3RerankValueError
from qwen3_rerank.chunking import cut_documents

QUERY = "What is the capital of France?"
TEXTS = ["Berlin is the capital of Germany.", "Paris is the capital of France.", "Cats purr."]


@pytest.fixture(scope="module")
def compressor(reference_reranker):
    return Qwen3Rerank(reranker=reference_reranker, top_n=None)


# -- item 8: an empty or whitespace-only query is an error on every path -----------------------------------


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
async def test_an_empty_query_is_refused_on_every_path(compressor, reference_reranker, query) -> None:
    docs = [Document(page_content=t) for t in TEXTS]
    with pytest.raises(Qwen3RerankValueError, match=r"query is (empty|whitespace only)"):
        compressor.compress_documents(docs, query)
    with pytest.raises(Qwen3RerankValueError, match=r"query is (empty|whitespace only)"):
        await compressor.acompress_documents(docs, query)
    with pytest.raises(Qwen3RerankValueError, match=r"query is (empty|whitespace only)"):
        compressor.rerank(TEXTS, query)
    with pytest.raises(Qwen3RerankValueError, match=r"query is (empty|whitespace only)"):
        compressor.rerank(TEXTS, query, top_n=0)  # nothing to keep, still checked
    with pytest.raises(Qwen3RerankValueError, match=r"pairs\[1\] query is (empty|whitespace only)"):
        Qwen3CrossEncoder(reranker=reference_reranker).score([(QUERY, "a"), (query, "b")])


# -- item 6: field types and values are pydantic errors, at construction and on assignment -----------------

BAD_FIELDS = [
    ({"top_n": "abc"}, "top_n"),
    ({"top_n": 2.5}, "top_n"),
    ({"top_n": True}, "top_n"),
    ({"top_n": -1}, "top_n"),
    ({"score_threshold": "x"}, "score_threshold"),
    ({"score_threshold": True}, "score_threshold"),
    ({"score_threshold": 1.5}, "score_threshold"),
    ({"long_documents": "chonk"}, "long_documents"),
    ({"chunk_tokens": -5}, "chunk_tokens"),
    ({"chunk_overlap": "x"}, "chunk_overlap"),
    ({"max_chunks": 0.5}, "max_chunks"),
]


@pytest.mark.parametrize(("fields", "name"), BAD_FIELDS)
def test_a_bad_field_is_a_validation_error_at_construction_and_on_assignment(reference_reranker, fields, name) -> None:
    with pytest.raises(ValidationError, match=rf"(?m)^{name}\n"):
        Qwen3Rerank(reranker=reference_reranker, **fields)
    adapter = Qwen3Rerank(reranker=reference_reranker, long_documents="chunk", chunk_tokens=16, chunk_overlap=4)
    before = {key: getattr(adapter, key) for key in fields}
    with pytest.raises(ValidationError, match=rf"(?m)^{name}\n"):
        for key, value in fields.items():
            setattr(adapter, key, value)
    assert {key: getattr(adapter, key) for key in fields} == before, "a refused value is not kept"


def test_chunk_fields_are_checked_together_on_assignment(reference_reranker) -> None:
    adapter = Qwen3Rerank(reranker=reference_reranker, long_documents="chunk", chunk_tokens=16, chunk_overlap=12)
    with pytest.raises(ValidationError, match="chunk_overlap=20 must be smaller than chunk_tokens=16"):
        adapter.chunk_overlap = 20
    with pytest.raises(ValidationError, match="chunk_overlap=12 must be smaller than chunk_tokens=10"):
        adapter.chunk_tokens = 10
    assert (adapter.chunk_tokens, adapter.chunk_overlap) == (16, 12)
    adapter.top_n, adapter.score_threshold, adapter.max_chunks = "2", "0.25", 8  # numeric text, as pydantic's int
    assert (adapter.top_n, adapter.score_threshold, adapter.max_chunks) == (2, 0.25, 8)


def test_the_core_keeps_its_own_type_errors(reference_reranker) -> None:
    from qwen3_rerank import Qwen3RerankTypeError

    with pytest.raises(Qwen3RerankTypeError, match="top_n must be an int or None"):
        reference_reranker.rank("q", ["d"], top_n="abc")


# -- item 7: rerank() as langchain-cohere's -------------------------------------------------------------


def test_rerank_maps_top_n_0_or_below_to_the_compressors(reference_reranker) -> None:
    compressor = Qwen3Rerank(reranker=reference_reranker, top_n=2)
    default = compressor.rerank(TEXTS, QUERY)
    assert len(default) == 2
    for top_n in (0, -1, -5):
        assert compressor.rerank(TEXTS, QUERY, top_n=top_n) == default
    assert len(compressor.rerank(TEXTS, QUERY, top_n=None)) == len(TEXTS)


def test_rerank_takes_max_tokens_per_doc(compressor, reference_reranker) -> None:
    long_doc = "Paris is the capital of France. " + "Cats purr and sleep all day long. " * 20
    rows = compressor.rerank([long_doc, TEXTS[0]], QUERY, max_tokens_per_doc=8)
    # The first 8 tokens of each document, cut at a word boundary, are what is scored.
    cut = cut_documents(reference_reranker.prompts, [long_doc], 8)[0][0]
    kept = long_doc[cut.char_start : cut.char_end]
    assert kept == "Paris is the capital of France. Cats" and len(cut.ids) == 8
    want = reference_reranker.score(QUERY, [kept, TEXTS[0]])
    assert sorted((r["index"], r["relevance_score"]) for r in rows) == [(0, want[0]), (1, want[1])]
    assert rows[0]["document"] == long_doc or rows[1]["document"] == long_doc  # the document given comes back
    assert compressor.rerank([long_doc], QUERY, max_tokens_per_doc=None)[0]["relevance_score"] != want[0]
    with pytest.raises(ValueError, match=r"max_tokens_per_doc must be an int >= 8"):
        compressor.rerank(TEXTS, QUERY, max_tokens_per_doc=0)


def test_rank_fields_matching_no_key_are_an_error(compressor) -> None:
    docs = [{"title": "Paris", "body": "Paris is the capital of France."}, {"title": "Cats"}]
    with pytest.raises(
        ValueError, match=r"documents\[0\] has none of rank_fields \['text'\]; its keys are \['body', 'title'\]"
    ):
        compressor.rerank(docs, QUERY, rank_fields=["text"])
    with pytest.raises(ValueError, match=r"documents\[1\] has none of rank_fields \['body'\]"):
        compressor.rerank(docs, QUERY, rank_fields=["body"])


async def test_a_generator_of_documents_is_read_once_in_order(compressor, reference_reranker) -> None:
    want = compressor.rerank(TEXTS, QUERY)
    assert compressor.rerank((t for t in TEXTS), QUERY) == want
    assert await compressor.arerank((t for t in TEXTS), QUERY) == want
    docs = [Document(page_content=t, id=str(i)) for i, t in enumerate(TEXTS)]
    assert [d.id for d in compressor.compress_documents(iter(docs), QUERY)] == [
        d.id for d in compressor.compress_documents(docs, QUERY)
    ]
    with pytest.raises(TypeError, match="wrap one in a list"):
        compressor.rerank({"text": "a dict is one document"}, QUERY)


# -- item 9: device spellings ----------------------------------------------------------------------------


def test_device_reaches_the_transformers_backend_in_every_spelling(tiny_model_dir) -> None:
    import torch

    model = str(tiny_model_dir)
    for adapter in (
        Qwen3Rerank(model, backend="transformers", device="cpu"),
        Qwen3Rerank(model, backend="transformers", device=torch.device("cpu")),
        Qwen3CrossEncoder(model, backend="transformers", device="cpu"),
        Qwen3CrossEncoder(model, backend="transformers", model_kwargs={"device": "cpu"}),  # HuggingFaceCrossEncoder's
    ):
        try:
            assert adapter.reranker.backend.device == "cpu"
        finally:
            adapter.close()
    compressor = Qwen3Rerank(model, backend="transformers", device=torch.device("cpu"))
    try:
        assert compressor.engine_options == {"device": "cpu"}  # the name, so the settings stay JSON
        twin = Qwen3Rerank.model_validate_json(compressor.model_dump_json())
        assert twin.engine_options == {"device": "cpu"}
        twin.close()
    finally:
        compressor.close()


def test_device_mistakes_name_the_fix(tiny_model_dir) -> None:
    model = str(tiny_model_dir)
    with pytest.raises(ValueError, match=r'only the transformers backend has; pass backend="transformers"'):
        Qwen3Rerank(model, device="cpu")
    with pytest.raises(ValueError, match=r"model_kwargs \['trust_remote_code'\] .* pass device=\.\.\."):
        Qwen3CrossEncoder(model, backend="transformers", model_kwargs={"trust_remote_code": True})


def test_cuda_without_a_gpu_is_our_error_naming_the_fix(tiny_model_dir) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for make in (Qwen3Rerank, Qwen3CrossEncoder):
        with pytest.raises(ValueError, match=r"device='cuda', but .*Pass device='cpu'") as caught:
            make(str(tiny_model_dir), backend="transformers", device="cuda")
        assert "Torch not compiled" not in str(caught.value)
