"""What a new user hit with the LlamaIndex adapter (issue 20): empty queries, field types, device
spellings. No vLLM here: the transformers reference reranker scores.
"""

from __future__ import annotations

import pytest
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.qwen3_rerank import Qwen3Rerank

from qwen3_rerank import Qwen3RerankValueError

TEXTS = ["Berlin is the capital of Germany.", "Paris is the capital of France.", "Cats purr."]


@pytest.fixture(scope="module")
def postprocessor(reference_reranker):
    return Qwen3Rerank(reranker=reference_reranker, top_n=None)


def nodes() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=t), score=0.5) for t in TEXTS]


# -- item 8: an empty or whitespace-only query is an error on every path -----------------------------------


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
async def test_an_empty_query_is_refused_on_every_path(postprocessor, query) -> None:
    with pytest.raises(Qwen3RerankValueError, match="query is (empty|whitespace only)"):
        postprocessor.postprocess_nodes(nodes(), QueryBundle(query_str=query))
    with pytest.raises(Qwen3RerankValueError, match="query is (empty|whitespace only)"):
        postprocessor.postprocess_nodes(nodes(), query_str=query)
    with pytest.raises(Qwen3RerankValueError, match="query is (empty|whitespace only)"):
        await postprocessor.apostprocess_nodes(nodes(), query_str=query)
    with pytest.raises(Qwen3RerankValueError, match="query is (empty|whitespace only)"):
        postprocessor.postprocess_nodes([], query_str=query)  # no nodes: still checked
