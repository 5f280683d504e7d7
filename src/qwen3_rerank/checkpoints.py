"""Which kind of Qwen3-Reranker checkpoint a model is: Qwen's original causal LM, or a converted
sequence-classification one.

Conversions such as the sentence-transformers ``*-seq-cls`` checkpoints keep the transformer and replace
the 151k-row LM head by a one-logit score head w = w_yes - w_no. Both give the same score,
sigmoid(z_yes - z_no) = sigmoid(w . h), so every backend loads either; only the head differs.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .errors import NotAQwen3RerankerError

__all__ = [
    "CAUSAL_LM",
    "SEQUENCE_CLASSIFICATION",
    "HF_OVERRIDES",
    "cached_config_path",
    "checkpoint_dtype",
    "checkpoint_kind",
    "hf_overrides_for",
    "kind_of_config",
    "read_cached_config",
    "vllm_dtype_options",
]

CAUSAL_LM = "causal-lm"
SEQUENCE_CLASSIFICATION = "sequence-classification"
_SEQ_CLS_ARCHITECTURE = "Qwen3ForSequenceClassification"

#: What makes vLLM load an original (causal LM) checkpoint as the yes/no classifier: the LM-head rows "no"
#: and "yes" folded into one score row. The in-process engine and ``vllm serve`` both get them.
HF_OVERRIDES: dict[str, Any] = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}


def _label_count(config: dict[str, Any]) -> int:
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return len(id2label)
    # transformers' PretrainedConfig default when a config names no labels.
    return int(config.get("num_labels", 2))


def kind_of_config(config: dict[str, Any], model: str) -> str:
    """:data:`CAUSAL_LM` or :data:`SEQUENCE_CLASSIFICATION` for a parsed config.json of ``model``."""
    architectures = config.get("architectures") or []
    if _SEQ_CLS_ARCHITECTURE not in architectures:
        return CAUSAL_LM
    labels = _label_count(config)
    if labels != 1:
        raise NotAQwen3RerankerError(
            f"{model!r} is a Qwen3ForSequenceClassification checkpoint with {labels} labels; a converted "
            "Qwen3-Reranker has one logit (w_yes - w_no). Use the original Qwen/Qwen3-Reranker-0.6B/4B/8B "
            "checkpoint or a one-label (*-seq-cls) conversion of it."
        )
    return SEQUENCE_CLASSIFICATION


def cached_config_path(model: str) -> str | None:
    """config.json of a local directory, or of a Hub name in the local cache; None otherwise (no download)."""
    path = os.path.expanduser(model)
    if os.path.isdir(path):
        candidate = os.path.join(path, "config.json")
        return candidate if os.path.isfile(candidate) else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json")
    except Exception:  # an invalid repo id or an unreadable cache: the loaders will say so
        return None
    return cached if isinstance(cached, str) else None


def checkpoint_kind(model: str) -> str:
    """The kind of a local directory or cached Hub model; a model with no readable config counts as the
    original causal LM (the Qwen/Qwen3-Reranker-* repositories)."""
    config = read_cached_config(model)  # an unreadable config is check_model_checkpoint's to report
    return CAUSAL_LM if config is None else kind_of_config(config, model)


def hf_overrides_for(model: str) -> dict[str, Any]:
    """The overrides that make vLLM load ``model`` as the yes/no classifier: :data:`HF_OVERRIDES` for an
    original checkpoint, none for a converted one (it already has its one-logit score head)."""
    return {} if checkpoint_kind(model) == SEQUENCE_CLASSIFICATION else dict(HF_OVERRIDES)

def checkpoint_dtype(model: str) -> str | None:
    """The dtype the checkpoint's weights are stored in (config.json ``torch_dtype``, or ``dtype`` as
    transformers >= 4.56 writes it), e.g. ``"bfloat16"``; None if the config is not readable or says none."""
    config = read_cached_config(model) or {}
    dtype = config.get("dtype", config.get("torch_dtype"))
    return dtype if isinstance(dtype, str) else None


def vllm_dtype_options(model: str) -> dict[str, str]:
    """``{"dtype": "float32"}`` for a float32 checkpoint, else ``{}``: what to tell vLLM when the user
    names no dtype, so that it runs the checkpoint's dtype as the other backends do.

    vLLM's own "auto" keeps a bfloat16 or float16 checkpoint's dtype (falling back, with a warning, on a
    device without it), but downcasts a float32 checkpoint to float16 for a pooling model (vLLM's
    ``_resolve_auto_dtype``), which moves scores by ~1e-3 and can change the order.
    """
    return {"dtype": "float32"} if checkpoint_dtype(model) == "float32" else {}


def read_cached_config(model: str) -> dict[str, Any] | None:
    """The parsed config.json of :func:`cached_config_path`; None if there is none or it is not a JSON object."""
    path = cached_config_path(model)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None
