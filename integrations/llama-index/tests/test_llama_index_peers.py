"""What users of LlamaIndex's SentenceTransformerRerank expect of Qwen3Rerank, and round trips that keep
its settings (to_dict/from_dict, to_json/from_json, pickle, cloudpickle, deepcopy, model_copy)."""

from __future__ import annotations

import copy
import inspect
import pickle

import cloudpickle
import pytest
from llama_index.core.bridge.pydantic import ValidationError
from llama_index.core.postprocessor import SentenceTransformerRerank
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.postprocessor.qwen3_rerank import Qwen3Rerank

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

# llama_index.core.postprocessor.SentenceTransformerRerank.__init__ (llama-index-core 0.14,
# llama-index-core/llama_index/core/postprocessor/sbert_rerank.py):
#     (self, top_n: int = 2, model: str = "cross-encoder/stsb-distilroberta-base", device: Optional[str] = None,
#      keep_retrieval_score: bool = False, trust_remote_code: bool = True)
# trust_remote_code has no meaning for Qwen3 (no remote code); everything else is understood here.
SBERT_RERANK = {
    "top_n": 2,
    "model": "cross-encoder/stsb-distilroberta-base",
    "device": None,
    "keep_retrieval_score": False,
    "trust_remote_code": True,
}
SHARED_DEFAULTS = {"top_n": 2, "device": None, "keep_retrieval_score": False}


def nodes() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=0.1 * i) for i, t in enumerate(TEXTS)]


def ranked(postprocessor: Qwen3Rerank) -> list[tuple[str, float]]:
    return [(n.node.node_id, n.score) for n in postprocessor.postprocess_nodes(nodes(), query_str=QUERY)]


def test_sentence_transformer_rerank_arguments_are_understood() -> None:
    peer = inspect.signature(SentenceTransformerRerank.__init__).parameters
    assert {name: p.default for name, p in peer.items() if name != "self"} == SBERT_RERANK
    ours = inspect.signature(Qwen3Rerank.__init__).parameters
    for name, default in SHARED_DEFAULTS.items():
        assert ours[name].default == default, name
    assert "model" in ours  # the model argument, by keyword as the peer's users write it


def test_device_is_understood_or_rejected_with_the_fix(vllm_reranker, reference_reranker, tiny_model_dir) -> None:
    engines = live_engine_count()
    with pytest.raises(ValueError, match=r'pass backend="transformers", engine_options=\{"device": "cuda"\}'):
        Qwen3Rerank(str(tiny_model_dir), device="cuda")
    with pytest.raises(ValueError, match="contradicts engine_options device='cuda'"):
        Qwen3Rerank(str(tiny_model_dir), backend="transformers", engine_options={"device": "cuda"}, device="cpu")
    assert live_engine_count() == engines
    on_cpu = Qwen3Rerank(str(tiny_model_dir), backend="transformers", engine_options=FLOAT32, device="cpu")
    try:
        assert on_cpu.engine_options == {"dtype": "float32", "device": "cpu"}
        assert on_cpu.reranker.backend.device == "cpu"
        assert ranked(on_cpu) == ranked(Qwen3Rerank(reranker=reference_reranker, top_n=2))
    finally:
        on_cpu.close()


def test_validation_as_the_peers_do(vllm_reranker) -> None:
    postprocessor = Qwen3Rerank(reranker=vllm_reranker, top_n="3", score_threshold="0.5")
    assert (postprocessor.top_n, postprocessor.score_threshold) == (3, 0.5)
    # Field types are pydantic's errors (issue 20 item 6), so `except ValidationError` catches a bad config.
    with pytest.raises(ValidationError, match=r"top_n\n  Input should be a valid integer, unable to parse string"):
        Qwen3Rerank(reranker=vllm_reranker, top_n="three")
    with pytest.raises(ValidationError, match=r"score_threshold\n  Input should be a valid number"):
        Qwen3Rerank(reranker=vllm_reranker, score_threshold={"x": 1})
    postprocessor.top_n = "1"
    assert postprocessor.top_n == 1
    with pytest.raises(
        ValidationError, match=r"top_n\n  Input should be a valid integer, got a number with a fractional"
    ):
        postprocessor.top_n = 1.5
    with pytest.raises(ValidationError, match="frozen"):
        postprocessor.model = "another/model"
    postprocessor.top_n = 0
    assert postprocessor.postprocess_nodes(nodes(), query_str=QUERY) == []
    with pytest.raises(ValidationError, match=r"topn\n  Extra inputs are not permitted"):
        Qwen3Rerank(reranker=vllm_reranker, topn=5)
    with pytest.raises(ValidationError, match=r"trust_remote_code\n  Extra inputs are not permitted"):
        Qwen3Rerank(reranker=vllm_reranker, trust_remote_code=True)


def test_round_trips_keep_the_settings_and_share_the_engine(vllm_reranker, tiny_model_dir) -> None:
    engines = live_engine_count()
    original = Qwen3Rerank(
        str(tiny_model_dir),
        engine_options=FLOAT32,
        batch_size=3,
        tokenizer=str(tiny_model_dir),
        top_n=3,
        keep_retrieval_score=True,
        instruction="Find capitals",
    )
    expected = ranked(original)
    copies = [
        Qwen3Rerank.from_dict(original.to_dict()),
        Qwen3Rerank.from_json(original.to_json()),
        Qwen3Rerank.model_validate(original.model_dump()),
        pickle.loads(pickle.dumps(original)),
        cloudpickle.loads(cloudpickle.dumps(original)),
        copy.deepcopy(original),
    ]
    try:
        assert live_engine_count() == engines, "a copy in the same process shares the live engine"
        for twin in copies:
            assert twin.reranker is not original.reranker and not twin.reranker.closed
            assert (twin.reranker.backend.name, twin.reranker.batch_size) == ("vllm", 3)
            assert twin.to_dict() == original.to_dict()
            assert ranked(twin) == expected
    finally:
        for twin in copies:
            twin.close()
    assert not original.reranker.closed
    original.close()


def test_a_passed_in_reranker_round_trips_to_the_same_settings(reference_reranker) -> None:
    postprocessor = Qwen3Rerank(reranker=reference_reranker, top_n=None)
    data = postprocessor.to_dict()
    assert (data["backend"], data["engine_options"]) == ("transformers", {"dtype": "float32"})
    twin = Qwen3Rerank.from_dict(data)
    try:
        assert twin.reranker.backend.name == "transformers" and ranked(twin) == ranked(postprocessor)
    finally:
        twin.close()
    assert not reference_reranker.closed


def test_model_copy_does_not_copy_ownership(vllm_reranker, tiny_model_dir) -> None:
    original = Qwen3Rerank(str(tiny_model_dir), engine_options=FLOAT32)
    try:
        shallow = original.model_copy(update={"top_n": 1})
        assert shallow.top_n == 1 and shallow.reranker is original.reranker
        shallow.close()
        assert not original.reranker.closed
        assert len(ranked(original)) == 2
    finally:
        original.close()
    assert not vllm_reranker.closed
