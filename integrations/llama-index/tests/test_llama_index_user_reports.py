"""What a new user hit with the LlamaIndex adapter (issue 20): empty queries, field types, device
spellings. No vLLM here: the transformers reference reranker scores.
"""

from __future__ import annotations

import pytest
from llama_index.core.bridge.pydantic import ValidationError
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
    with pytest.raises(Qwen3RerankValueError, match=r"query is (empty|whitespace only)"):
        postprocessor.postprocess_nodes(nodes(), QueryBundle(query_str=query))
    with pytest.raises(Qwen3RerankValueError, match=r"query is (empty|whitespace only)"):
        postprocessor.postprocess_nodes(nodes(), query_str=query)
    with pytest.raises(Qwen3RerankValueError, match=r"query is (empty|whitespace only)"):
        await postprocessor.apostprocess_nodes(nodes(), query_str=query)
    with pytest.raises(Qwen3RerankValueError, match=r"query is (empty|whitespace only)"):
        postprocessor.postprocess_nodes([], query_str=query)  # no nodes: still checked


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


# -- item 9: device spellings ----------------------------------------------------------------------------


def test_a_torch_device_is_kept_as_its_name_so_to_json_works(tiny_model_dir) -> None:
    import torch

    postprocessor = Qwen3Rerank(str(tiny_model_dir), backend="transformers", device=torch.device("cpu"))
    try:
        assert postprocessor.engine_options == {"device": "cpu"}
        assert postprocessor.reranker.backend.device == "cpu"
        twin = Qwen3Rerank.from_json(postprocessor.to_json())
        assert twin.engine_options == {"device": "cpu"}
        twin.close()
    finally:
        postprocessor.close()


def test_cuda_without_a_gpu_is_our_error_naming_the_fix(tiny_model_dir) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match=r"device='cuda', but .*Pass device='cpu'") as caught:
        Qwen3Rerank(str(tiny_model_dir), backend="transformers", device="cuda")
    assert "Torch not compiled" not in str(caught.value)
