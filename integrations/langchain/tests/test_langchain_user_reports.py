"""What a new user hit with the LangChain adapter (issue 20): empty queries, field types, Cohere's
``rerank`` arguments, device spellings. No vLLM here: the transformers reference reranker scores.
"""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_qwen3_rerank import Qwen3CrossEncoder, Qwen3Rerank

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
    with pytest.raises(Qwen3RerankValueError, match="query is (empty|whitespace only)"):
        compressor.compress_documents(docs, query)
    with pytest.raises(Qwen3RerankValueError, match="query is (empty|whitespace only)"):
        await compressor.acompress_documents(docs, query)
    with pytest.raises(Qwen3RerankValueError, match="query is (empty|whitespace only)"):
        compressor.rerank(TEXTS, query)
    with pytest.raises(Qwen3RerankValueError, match="query is (empty|whitespace only)"):
        compressor.rerank(TEXTS, query, top_n=0)  # nothing to keep, still checked
    with pytest.raises(Qwen3RerankValueError, match=r"pairs\[1\] query is (empty|whitespace only)"):
        Qwen3CrossEncoder(reranker=reference_reranker).score([(QUERY, "a"), (query, "b")])
