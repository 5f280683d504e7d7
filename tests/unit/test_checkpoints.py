"""Converted sequence-classification checkpoints score as the original, and a Reranker survives pickling.

A ``*-seq-cls`` conversion (sentence-transformers v6 and others) is ``Qwen3ForSequenceClassification`` with
a one-logit score head w_yes - w_no; here the tiny model is converted the same way and every in-process
backend must give the original checkpoint's scores within 1e-5 in float32, and so must the server backend
over ``vllm serve`` started on the checkpoint without the original's ``--hf-overrides``.
"""

from __future__ import annotations

import copy
import json
import pickle
import shutil

import cloudpickle
import pytest

from qwen3_rerank import NotAQwen3RerankerError, Reranker
from qwen3_rerank.checkpoints import CAUSAL_LM, SEQUENCE_CLASSIFICATION, checkpoint_kind
from qwen3_rerank.random_checkpoint import write_seq_cls_checkpoint

QUERY = "What is the capital of France?"
DOCUMENTS = [
    "Paris is the capital of France.",
    "Berlin is the capital of Germany.",
    "",
    "<|im_end|> a control-token spelling stays text",
    "Photosynthesis converts light energy into chemical energy. " * 40,
]
FLOAT32 = {"dtype": "float32"}


@pytest.fixture(scope="module")
def seq_cls_dir(tiny_model_dir, tmp_path_factory):
    return write_seq_cls_checkpoint(tiny_model_dir, tmp_path_factory.mktemp("tiny-seq-cls"))


def test_the_conversion_is_a_one_logit_sequence_classifier(seq_cls_dir, tiny_model_dir) -> None:
    config = json.loads((seq_cls_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForSequenceClassification"] and len(config["id2label"]) == 1
    assert checkpoint_kind(str(seq_cls_dir)) == SEQUENCE_CLASSIFICATION
    assert checkpoint_kind(str(tiny_model_dir)) == CAUSAL_LM
    assert checkpoint_kind("no/such-model") == CAUSAL_LM  # not cached: the loaders report it


def test_a_many_label_classifier_is_refused_before_loading(seq_cls_dir, tmp_path) -> None:
    other = tmp_path / "two-labels"
    shutil.copytree(seq_cls_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["id2label"] = {"0": "no", "1": "yes"}
    (other / "config.json").write_text(json.dumps(config))
    for backend in ("transformers", "vllm"):
        with pytest.raises(NotAQwen3RerankerError, match="with 2 labels; a converted Qwen3-Reranker has one logit"):
            Reranker(str(other), backend=backend)


def test_transformers_backend_scores_a_seq_cls_checkpoint_as_the_original(seq_cls_dir, reference_reranker) -> None:
    with Reranker(str(seq_cls_dir), backend="transformers", engine_options=FLOAT32) as converted:
        got = converted.score(QUERY, DOCUMENTS)
        assert not hasattr(converted.backend.model, "lm_head")  # the score head, not the LM head, is used
    want = reference_reranker.score(QUERY, DOCUMENTS)
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 1e-5
    assert len(set(round(s, 4) for s in want)) >= 3, "scores spread enough for the comparison to mean something"


@pytest.mark.vllm
def test_vllm_backend_scores_a_seq_cls_checkpoint_as_the_original(seq_cls_dir, vllm_reranker) -> None:
    with Reranker(str(seq_cls_dir), engine_options=FLOAT32) as converted:
        got = converted.score(QUERY, DOCUMENTS)
    want = vllm_reranker.score(QUERY, DOCUMENTS)
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 1e-5


def test_serve_command_gives_a_seq_cls_checkpoint_no_overrides(seq_cls_dir, tiny_model_dir) -> None:
    from qwen3_rerank.backends.server_backend import serve_command

    assert "--hf-overrides" not in serve_command(str(seq_cls_dir))
    assert "--hf-overrides" in serve_command(str(tiny_model_dir))


@pytest.mark.vllm
def test_server_backend_scores_a_seq_cls_checkpoint_as_the_original(seq_cls_dir, vllm_reranker, tmp_path) -> None:
    # `vllm serve` on the converted checkpoint, without the original's --hf-overrides: the same scores.
    pytest.importorskip("httpx")
    from server_fixtures import launch_vllm_server

    server = launch_vllm_server(seq_cls_dir, tmp_path, original_checkpoint=False).wait_healthy()
    try:
        options = {"base_urls": server.url, "api_key": server.api_key}
        with Reranker(str(seq_cls_dir), backend="server", engine_options=options) as converted:
            got = converted.score(QUERY, DOCUMENTS)
    finally:
        server.stop()
    want = vllm_reranker.score(QUERY, DOCUMENTS)
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 1e-5


# -- pickling ----------------------------------------------------------------------------------------


def test_prompt_builder_pickles_and_deepcopies(prompt_builder) -> None:
    expected = prompt_builder.build("Find capitals", QUERY, DOCUMENTS)
    for twin in (
        pickle.loads(pickle.dumps(prompt_builder)),
        cloudpickle.loads(cloudpickle.dumps(prompt_builder)),
        copy.deepcopy(prompt_builder),
    ):
        assert twin.build("Find capitals", QUERY, DOCUMENTS) == expected
        assert twin.max_length == prompt_builder.max_length


def test_reranker_pickles_as_its_settings(reference_reranker, tiny_model_dir) -> None:
    original = Reranker(
        str(tiny_model_dir),
        backend="transformers",
        engine_options=FLOAT32,
        instruction="Find capitals",
        max_length=2048,
        batch_size=2,
    )
    want = original.score(QUERY, DOCUMENTS)
    for twin in (
        pickle.loads(pickle.dumps(original)),
        cloudpickle.loads(cloudpickle.dumps(original)),
        copy.deepcopy(original),
    ):
        with twin:
            assert twin.backend is not original.backend
            assert (twin.instruction, twin.max_length, twin.batch_size) == ("Find capitals", 2048, 2)
            assert twin.score(QUERY, DOCUMENTS) == want
    assert not original.closed
    original.close()
    # A closed reranker still carries its settings: the copy opens again.
    with copy.deepcopy(original) as reopened:
        assert reopened.score(QUERY, DOCUMENTS) == want


@pytest.mark.vllm
def test_a_vllm_reranker_copy_shares_the_live_engine(vllm_reranker) -> None:
    from qwen3_rerank.backends.vllm_backend import live_engine_count

    engines = live_engine_count()
    twin = copy.deepcopy(vllm_reranker)
    try:
        assert live_engine_count() == engines and twin.backend.engine is vllm_reranker.backend.engine
        assert twin.score(QUERY, DOCUMENTS[:2]) == vllm_reranker.score(QUERY, DOCUMENTS[:2])
    finally:
        twin.close()
    assert not vllm_reranker.closed and live_engine_count() == engines


def test_a_reranker_over_a_backend_object_says_why_it_cannot_pickle(reference_reranker, tiny_model_dir) -> None:
    shared = Reranker(str(tiny_model_dir), backend=reference_reranker.backend)
    with pytest.raises(TypeError, match=r"backend object \(TransformersBackend\) cannot be pickled or copied"):
        pickle.dumps(shared)


# -- the default dtype is the checkpoint's, on every backend (issue 20 item 3) -------------------------


@pytest.fixture(scope="module")
def bf16_model_dir(tmp_path_factory, tokenizer_dir):
    from qwen3_rerank.random_checkpoint import write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp("tiny-bf16"), tokenizer_dir, dtype="bfloat16")


def test_vllm_is_told_the_dtype_of_a_float32_checkpoint_only(tiny_model_dir, bf16_model_dir) -> None:
    from qwen3_rerank.backends.server_backend import serve_command
    from qwen3_rerank.checkpoints import Checkpoint, vllm_dtype_options

    dtypes = (Checkpoint.resolve(str(tiny_model_dir)).dtype, Checkpoint.resolve(str(bf16_model_dir)).dtype)
    assert dtypes == ("float32", "bfloat16")
    # vLLM's "auto" keeps bfloat16 but would run float32 in float16: only float32 is named.
    assert vllm_dtype_options(str(tiny_model_dir)) == {"dtype": "float32"}
    assert vllm_dtype_options(str(bf16_model_dir)) == {} == vllm_dtype_options("no/such-model")
    assert "--dtype=float32" in serve_command(str(tiny_model_dir))
    assert not any(flag.startswith("--dtype") for flag in serve_command(str(bf16_model_dir)))


@pytest.mark.parametrize("backend", ["transformers", "packed"])
def test_torch_backends_run_the_checkpoints_dtype_by_default(backend, tiny_model_dir, bf16_model_dir) -> None:
    import torch

    for model, want in ((tiny_model_dir, torch.float32), (bf16_model_dir, torch.bfloat16)):
        with Reranker(str(model), backend=backend) as reranker:
            assert next(reranker.backend.model.parameters()).dtype == want


@pytest.mark.vllm
def test_vllm_without_a_dtype_scores_a_float32_checkpoint_in_float32(
    tiny_model_dir, vllm_reranker, reference_reranker
) -> None:
    # No engine_options at all: before, vLLM's "auto" ran this float32 checkpoint in float16 (scores off by
    # up to 2.4e-3, order changed). Now it is the float32 engine the session already holds.
    with Reranker(str(tiny_model_dir)) as default:
        got = default.score(QUERY, DOCUMENTS)
    want = reference_reranker.score(QUERY, DOCUMENTS)
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 1e-5


def _count_our_config_reads(monkeypatch) -> list[str]:
    """Every config.json that qwen3_rerank's own code opens (transformers' and vLLM's loaders not counted)."""
    import builtins
    import sys

    reads: list[str] = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if str(file).endswith("config.json") and caller.startswith("qwen3_rerank"):
            reads.append(f"{caller}: {file}")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    return reads


def test_config_json_is_read_once_per_reranker(tiny_model_dir, monkeypatch) -> None:
    """Regression: the checkpoint was resolved 3-4 times per Reranker (validation, context length, kind,
    overrides, the vLLM backend's model-type check), each opening config.json again."""
    reads = _count_our_config_reads(monkeypatch)
    with Reranker(str(tiny_model_dir), backend="transformers", engine_options=FLOAT32) as reranker:
        assert len(reads) == 1, reads
        assert reranker.checkpoint.kind == CAUSAL_LM and reranker.checkpoint.context_length is not None
        assert reranker.prompts.context_length == reranker.checkpoint.context_length


@pytest.mark.vllm
def test_config_json_is_read_once_per_vllm_reranker(tiny_model_dir, vllm_reranker, monkeypatch) -> None:
    from conftest import TEST_ENGINE_OPTIONS

    reads = _count_our_config_reads(monkeypatch)
    with Reranker(str(tiny_model_dir), engine_options=TEST_ENGINE_OPTIONS) as reranker:  # shares the engine
        assert len(reads) == 1, reads
        assert reranker.score(QUERY, DOCUMENTS[:2]) == vllm_reranker.score(QUERY, DOCUMENTS[:2])


def test_a_wrong_model_type_is_one_message_everywhere(tiny_model_dir, tmp_path) -> None:
    from qwen3_rerank.checkpoints import Checkpoint

    other = tmp_path / "llama"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(NotAQwen3RerankerError, match="is a 'llama' model, not a Qwen3 causal LM") as caught:
        Checkpoint.resolve(str(other))
    with pytest.raises(NotAQwen3RerankerError) as direct:
        from qwen3_rerank.backends.vllm_backend import VLLMBackend

        VLLMBackend(str(other), max_length=64)  # a backend opened directly checks it too, before vLLM starts
    assert str(direct.value) == str(caught.value)
