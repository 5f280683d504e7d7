"""The default backend: vLLM in-process, pooling runner, prompts passed as token ids.

vLLM loads the causal LM as ``Qwen3ForSequenceClassification`` and folds the LM-head rows "yes" and
"no" into one classifier row (w_yes - w_no), so ``LLM.classify`` returns sigmoid(z_yes - z_no) directly:
the model's own score, without computing 151k logits per prompt.

Engines are expensive (seconds to minutes to start, most of a GPU's memory), so there is one engine
per (model, options) per process, shared by every reranker that asks for the same one and released
when the last of them closes.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendNotInstalledError, EngineError, ModelNotFoundError, NotAQwen3RerankerError
from .base import ThreadedAsyncMixin

__all__ = ["HF_OVERRIDES", "VLLMBackend", "default_engine_options", "live_engine_count"]

HF_OVERRIDES: dict[str, Any] = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}


def _is_cpu_build() -> bool:
    try:
        importlib.metadata.distribution("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def default_engine_options(max_length: int) -> dict[str, Any]:
    """Engine options tuned for scoring (one forward pass per prompt, no decoding).

    Prompts never exceed ``max_length``, so the context is capped there (less KV memory to reserve);
    large token and sequence budgets let the scheduler pack many short prompts into one step; prefix
    caching reuses the instruction+query prefix that every document of a query shares.
    """
    options: dict[str, Any] = {
        "max_model_len": max_length,
        "enable_prefix_caching": True,
        "max_num_seqs": 512,
        "max_num_batched_tokens": max(65536, max_length),
        # Overlaps the scheduler's CPU work with the GPU's step (vLLM turns it off for pooling models);
        # measured on an H100, 0.6B bulk scoring: +19 % tokens/s (docs/benchmarks.md).
        "async_scheduling": True,
    }
    if _is_cpu_build():
        # On CPU a large step only costs memory; vLLM's CPU defaults are already sensible.
        options.pop("max_num_seqs")
        options.pop("async_scheduling")
        options["max_num_batched_tokens"] = max(8192, max_length)
    return options


@dataclass
class _SharedEngine:
    key: tuple[str, str]
    llm: Any
    max_model_len: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


_ENGINES: dict[tuple[str, str], _SharedEngine] = {}
_ENGINES_LOCK = threading.Lock()


def live_engine_count() -> int:
    """How many vLLM engines this process holds (for tests and diagnostics)."""
    with _ENGINES_LOCK:
        return len(_ENGINES)


def _engine_key(model: str, options: Mapping[str, Any]) -> tuple[str, str]:
    return (model, repr(sorted(options.items())))


def _start_engine(model: str, options: Mapping[str, Any]) -> Any:
    if _is_cpu_build():
        # Without this vLLM CPU reserves ~16 GB of KV cache up front, far more than scoring needs.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
    try:
        from vllm import LLM
    except ImportError as exc:
        raise BackendNotInstalledError(
            "The vLLM backend needs vLLM: pip install qwen3-rerank[gpu] (CUDA) or qwen3-rerank[cpu], "
            "or use backend='transformers'."
        ) from exc
    if not os.path.isdir(model) and os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            raise ModelNotFoundError(
                f"Model {model!r} is not a local directory and HF_HUB_OFFLINE=1 forbids downloading it. "
                "Pass the path of a local Qwen3-Reranker directory, or unset HF_HUB_OFFLINE."
            )
    try:
        return LLM(model=model, runner="pooling", hf_overrides=dict(HF_OVERRIDES), **options)
    except (OSError, ValueError) as exc:
        message = str(exc)
        if "architecture" in message.lower() or "qwen3" in message.lower():
            raise NotAQwen3RerankerError(
                f"vLLM cannot load {model!r} as a Qwen3-Reranker: {message.splitlines()[0]}"
            ) from exc
        raise EngineError(
            f"vLLM could not start on {model!r}: {message.splitlines()[0] if message else type(exc).__name__}"
        ) from exc


def _acquire(model: str, options: Mapping[str, Any]) -> _SharedEngine:
    key = _engine_key(model, options)
    with _ENGINES_LOCK:
        shared = _ENGINES.get(key)
        if shared is None:
            llm = _start_engine(model, options)
            max_model_len = int(llm.llm_engine.model_config.max_model_len)
            shared = _ENGINES[key] = _SharedEngine(key=key, llm=llm, max_model_len=max_model_len)
        shared.users += 1
        return shared


def _release(shared: _SharedEngine) -> None:
    with _ENGINES_LOCK:
        shared.users -= 1
        if shared.users > 0:
            return
        _ENGINES.pop(shared.key, None)
    with shared.lock:
        llm, shared.llm = shared.llm, None
        with contextlib.suppress(Exception):
            llm.llm_engine.engine_core.shutdown()
        del llm
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def _model_type(model: str) -> str | None:
    config = os.path.join(model, "config.json")
    if not os.path.isfile(config):
        return None
    import json

    with open(config, encoding="utf-8") as handle:
        return json.load(handle).get("model_type")


class VLLMBackend(ThreadedAsyncMixin):
    name = "vllm"

    def __init__(self, model: str, *, max_length: int, engine_options: Mapping[str, Any] | None = None) -> None:
        model_type = _model_type(model)
        if model_type is not None and model_type != "qwen3":
            raise NotAQwen3RerankerError(
                f"{model!r} is a {model_type!r} model, not a Qwen3 causal LM; "
                "use a Qwen/Qwen3-Reranker-0.6B/4B/8B checkpoint."
            )
        options = {**default_engine_options(max_length), **dict(engine_options or {})}
        if "hf_overrides" in options or "runner" in options:
            raise ValueError("engine_options may not set hf_overrides or runner: qwen3-rerank sets them")
        if int(options["max_model_len"]) < max_length:
            raise ValueError(
                f"engine_options max_model_len={options['max_model_len']} is below max_length={max_length}: "
                "prompts of max_length tokens would not fit. Lower max_length or raise max_model_len."
            )
        self.engine_options: dict[str, Any] = options
        self._shared: _SharedEngine | None = _acquire(model, options)
        self.max_prompt_tokens: int | None = self._shared.max_model_len

    @property
    def llm(self) -> Any:
        """The underlying ``vllm.LLM`` (shared; do not close it yourself)."""
        if self._shared is None:
            raise EngineError("This reranker is closed; create a new one.")
        return self._shared.llm

    def score_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        if not prompts:
            return []
        from vllm.inputs import TokensPrompt

        shared = self._shared
        if shared is None:
            raise EngineError("This reranker is closed; create a new one.")
        requests = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts]
        with shared.lock:
            if shared.llm is None:
                raise EngineError("The vLLM engine was shut down; create a new reranker.")
            outputs = shared.llm.classify(requests, use_tqdm=False)
        if len(outputs) != len(prompts):
            raise EngineError(f"vLLM returned {len(outputs)} results for {len(prompts)} prompts")
        return [float(out.outputs.probs[0]) for out in outputs]

    def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            _release(shared)
