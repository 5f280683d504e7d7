"""What a new user hit with the LangChain adapter (issue 20): empty queries, field types, Cohere's
``rerank`` arguments, device spellings. No vLLM here: the transformers reference reranker scores.
"""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_qwen3_rerank import Qwen3CrossEncoder, Qwen3Rerank
from pydantic import ValidationError

from qwen3_rerank import Qwen3RerankValueError

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
