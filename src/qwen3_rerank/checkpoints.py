"""What a checkpoint is, resolved once: [`Checkpoint`][qwen3_rerank.checkpoints.Checkpoint] (path, config, kind, context
length, vLLM overrides), and the one place its config.json is read and checked.

Two kinds of Qwen3-Reranker checkpoint score the same: Qwen's original causal LM, and converted
sequence-classification ones. Conversions such as the sentence-transformers ``*-seq-cls`` checkpoints
keep the transformer and replace the 151k-row LM head by a one-logit score head w = w_yes - w_no; since
sigmoid(z_yes - z_no) = sigmoid(w . h), every backend loads either; only the head differs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ModelNotFoundError, NotAQwen3RerankerError, Qwen3RerankValueError

__all__ = [
    "CAUSAL_LM",
    "HF_OVERRIDES",
    "SEQUENCE_CLASSIFICATION",
    "Checkpoint",
    "cached_config_path",
    "checkpoint_kind",
    "hf_overrides_for",
    "kind_of_config",
    "not_a_qwen3_model",
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


def not_a_qwen3_model(model: str, model_type: Any) -> NotAQwen3RerankerError:
    """The error for a checkpoint whose ``model_type`` is not ``qwen3`` (every loader raises this one)."""
    return NotAQwen3RerankerError(
        f"{model!r} is a {model_type!r} model, not a Qwen3 causal LM; use a Qwen/Qwen3-Reranker-0.6B/4B/8B checkpoint."
    )


def _label_count(config: Mapping[str, Any]) -> int:
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return len(id2label)
    # transformers' PretrainedConfig default when a config names no labels.
    return int(config.get("num_labels", 2))


def kind_of_config(config: Mapping[str, Any], model: str) -> str:
    """``CAUSAL_LM`` or
    ``SEQUENCE_CLASSIFICATION`` for a parsed config.json of
    ``model``."""
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


def _context_is_scaled(config: Mapping[str, Any]) -> bool:
    """RoPE scaling (YaRN ...) lets an engine go past max_position_embeddings, so no limit is derived then."""
    scaling = config.get("rope_scaling") or {}
    parameters = config.get("rope_parameters") or {}
    kinds = {scaling.get("rope_type", scaling.get("type")), parameters.get("rope_type")} - {None, "default"}
    return bool(kinds) or "factor" in scaling


def _context_length(config: Mapping[str, Any]) -> int | None:
    if _context_is_scaled(config):
        return None
    context = config.get("max_position_embeddings")
    return context if isinstance(context, int) and not isinstance(context, bool) and context > 0 else None


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


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A model as qwen3-rerank sees it before loading it: read once, then handed to the prompt builder's
    caller and the backend. ``config`` is None for a Hub name that is not in the local cache (the loaders
    download and check it)."""

    #: what the user named: a Hub name or a local directory
    model: str
    #: its config.json, when at hand
    config_path: str | None = None
    config: Mapping[str, Any] | None = None
    #: ``CAUSAL_LM`` (also when the config is not at hand) or
    #: ``SEQUENCE_CLASSIFICATION``
    kind: str = CAUSAL_LM
    #: ``max_position_embeddings`` when the config is at hand and its RoPE is not scaled; else None
    context_length: int | None = None

    @property
    def hf_overrides(self) -> dict[str, Any]:
        """What makes vLLM load it as the yes/no classifier: ``HF_OVERRIDES`` for
        an original checkpoint, none for a converted one (it already has its one-logit score head)."""
        return {} if self.kind == SEQUENCE_CLASSIFICATION else dict(HF_OVERRIDES)

    @property
    def dtype(self) -> str | None:
        """The dtype its weights are stored in (config.json ``dtype``, as transformers >= 4.56 writes it, or
        ``torch_dtype``), e.g. ``"bfloat16"``; None when the config is not at hand or names none."""
        config = self.config or {}
        dtype = config.get("dtype", config.get("torch_dtype"))
        return dtype if isinstance(dtype, str) else None

    @property
    def vllm_dtype_options(self) -> dict[str, str]:
        """``{"dtype": "float32"}`` for a float32 checkpoint, else ``{}``: what vLLM is told when the user
        names no dtype, so that it runs the checkpoint's dtype as the other backends do.

        vLLM's own "auto" keeps a bfloat16 or float16 checkpoint's dtype (falling back, with a warning, on a
        device without it), but downcasts a float32 checkpoint to float16 for a pooling model (vLLM's
        ``_resolve_auto_dtype``), which moves scores by ~1e-3 and can change the order.
        """
        return {"dtype": "float32"} if self.dtype == "float32" else {}

    @classmethod
    def cached(cls, model: str) -> Checkpoint:
        """What is known without checking: the config, if at hand and readable. Raises only for a
        many-label classifier (no loader can score that)."""
        path = cached_config_path(model)
        try:
            config = _read(path) if path is not None else None
        except (OSError, ValueError):  # an unreadable config is resolve()'s to report
            config = None
        if not isinstance(config, dict):
            return cls(model)
        return cls(model, path, config, kind_of_config(config, model), _context_length(config))

    @classmethod
    def resolve(cls, model: str) -> Checkpoint:
        """Fail in milliseconds, not after an engine start, on a checkpoint that cannot be a Qwen3-Reranker.

        Checks a local directory (config.json, model type, weights) and the cached config of a Hub name; a
        Hub name that is not cached is left to the loaders.
        """
        path = os.path.expanduser(model)
        is_dir = os.path.isdir(path)
        if not is_dir and (os.path.isabs(path) or model.startswith((".", "~")) or os.path.exists(path)):
            what = "is a file, not a model directory" if os.path.exists(path) else "does not exist"
            raise ModelNotFoundError(
                f"Model directory {model!r} {what}. Pass the directory of a Qwen3-Reranker checkpoint, or a Hub "
                "name such as 'Qwen/Qwen3-Reranker-0.6B'."
            )
        config_path = cached_config_path(model)
        if config_path is None:
            if is_dir:
                raise NotAQwen3RerankerError(
                    f"{model!r} has no config.json, so it is not a model checkpoint (a tokenizer alone is not "
                    "enough). Point the reranker at a Qwen3-Reranker directory, e.g. one made with "
                    "`huggingface-cli download Qwen/Qwen3-Reranker-0.6B --local-dir DIR`."
                )
            return cls(model)
        try:
            config = _read(config_path)
        except (OSError, ValueError) as exc:
            raise NotAQwen3RerankerError(f"{config_path} is not a readable JSON model config: {exc}") from exc
        model_type = config.get("model_type") if isinstance(config, dict) else None
        if not isinstance(config, dict) or model_type != "qwen3":
            raise not_a_qwen3_model(model, model_type)
        kind = kind_of_config(config, model)  # a sequence-classification conversion must have one logit
        if is_dir and not any(name.endswith((".safetensors", ".bin")) for name in os.listdir(path)):
            raise ModelNotFoundError(
                f"{model!r} has a config.json but no weights (*.safetensors or *.bin): an unfinished download? "
                "Download the checkpoint again."
            )
        return cls(model, config_path, config, kind, _context_length(config))

    def check_max_length(self, max_length: int) -> None:
        """``max_length`` fits the model's context (when the config says what it is)."""
        if self.context_length is not None and max_length > self.context_length:
            raise Qwen3RerankValueError(
                f"max_length={max_length} exceeds the model's context of {self.context_length} tokens "
                f"(max_position_embeddings in {self.config_path}); pass max_length <= {self.context_length}."
            )


def _read(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def checkpoint_kind(model: str) -> str:
    """The kind of a local directory or cached Hub model; a model with no readable config counts as the
    original causal LM (the Qwen/Qwen3-Reranker-* repositories)."""
    return Checkpoint.cached(model).kind


def hf_overrides_for(model: str) -> dict[str, Any]:
    """[`Checkpoint.hf_overrides`][qwen3_rerank.checkpoints.Checkpoint.hf_overrides] of ``model`` (for ``vllm serve``
    command lines)."""
    return Checkpoint.cached(model).hf_overrides


def vllm_dtype_options(model: str) -> dict[str, str]:
    """[`Checkpoint.vllm_dtype_options`][qwen3_rerank.checkpoints.Checkpoint.vllm_dtype_options] of ``model`` (for
    ``vllm serve`` command lines)."""
    return Checkpoint.cached(model).vllm_dtype_options
