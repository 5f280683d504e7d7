"""``engine_options`` checked before anything loads: a misspelt option or an unknown dtype fails in
milliseconds, naming the valid choices, instead of deep inside an engine after the model has loaded.

The valid names come from the backends themselves (the fields of ``AsyncEngineArgs``, which the vLLM
backend builds its engine from, plus that backend's own options; the constructors' parameters for the
others), so they follow whichever vLLM version is installed.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import inspect
import typing
from collections.abc import Mapping
from typing import Any

from .errors import BackendNotInstalledError, Qwen3RerankTypeError, Qwen3RerankValueError

__all__ = ["BACKEND_NAMES", "check_backend_name", "check_engine_options", "vllm_dtypes", "vllm_option_names"]

#: The message when vLLM is needed and missing (the option check and the backend both need it).
VLLM_MISSING = (
    "The vLLM backend needs vLLM: pip install qwen3-rerank[gpu] (CUDA) or qwen3-rerank[cpu], "
    "or use backend='transformers'."
)

BACKEND_NAMES = ("vllm", "transformers", "server", "packed")

#: options qwen3-rerank sets itself on the vLLM engine, and why a user may not
_VLLM_RESERVED = {
    "model": "pass the model as the Reranker's first argument",
    "runner": "qwen3-rerank runs the model as a pooling (scoring) model",
    "hf_overrides": "qwen3-rerank sets them to turn the causal LM into a yes-vs-no scorer",
}


def check_backend_name(backend: Any) -> None:
    if isinstance(backend, str) and backend not in BACKEND_NAMES:
        raise Qwen3RerankValueError(
            f"backend must be 'vllm', 'transformers', 'server' or 'packed' (or a ScoringBackend object), "
            f"got {backend!r}"
        )


def check_engine_options(backend: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``options`` once every name is one ``backend`` takes and ``dtype`` is one it knows."""
    check_backend_name(backend)
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise Qwen3RerankTypeError(
            f"engine_options must be a dict of option names to values, got {type(options).__name__}"
        )
    options = dict(options)
    for name in options:
        if not isinstance(name, str):
            raise Qwen3RerankTypeError(f"engine_options names must be str, got {name!r}")
    if backend == "vllm":
        _check_vllm(options)
    elif backend in ("transformers", "packed"):
        _check_names(backend, options, _constructor_parameters(backend))
        _check_torch_dtype(options.get("dtype", "auto"))
        batch_size = options.get("batch_size", 1)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise Qwen3RerankValueError(f"engine_options batch_size must be a positive int, got {batch_size!r}")
    else:
        _check_names(backend, options, _constructor_parameters("server"))
        if "base_urls" not in options:
            raise Qwen3RerankValueError(
                "backend='server' needs engine_options={'base_urls': ['http://HOST:PORT', ...]}, the URLs of "
                "running `vllm serve` servers"
            )
    return options


def _check_names(backend: str, options: Mapping[str, Any], valid: frozenset[str]) -> None:
    unknown = [name for name in options if name not in valid]
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, valid, n=3)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    raise Qwen3RerankTypeError(
        f"engine_options for backend={backend!r}: unknown option {name!r}{hint}. "
        f"Valid options: {', '.join(sorted(n for n in valid if not n.startswith('_')))}."
    )


@functools.cache
def _constructor_parameters(backend: str) -> frozenset[str]:
    if backend == "transformers":
        from .backends.transformers_backend import TransformersBackend as cls
    elif backend == "packed":
        from .backends.packed_backend import PackedBackend as cls  # type: ignore[assignment]
    else:
        from .backends.server_backend import ServerBackend as cls  # type: ignore[assignment]
    parameters = inspect.signature(cls.__init__).parameters
    return frozenset(p for p in parameters if p not in ("self", "model"))


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise BackendNotInstalledError(VLLM_MISSING) from exc
    return vllm


@functools.cache
def vllm_option_names() -> frozenset[str]:
    """What the vLLM backend takes: the fields of ``AsyncEngineArgs`` (its engine is built from them) and
    the backend's own options (``max_in_flight_prompts``), which it takes out before vLLM sees them."""
    _import_vllm()
    from vllm.engine.arg_utils import AsyncEngineArgs

    from .backends.vllm_backend import OWN_OPTIONS

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


def _is_torch_dtype(value: Any) -> bool:
    return type(value).__module__ == "torch" and type(value).__name__ == "dtype"


def _check_vllm(options: Mapping[str, Any]) -> None:
    if not options:
        return  # nothing to check, so vLLM is not imported before the tokenizer loads
    for name, why in _VLLM_RESERVED.items():
        if name in options:
            raise Qwen3RerankValueError(f"engine_options may not set {name!r}: {why}")
    valid = vllm_option_names() - set(_VLLM_RESERVED)
    _check_names("vllm", options, valid)
    if "dtype" in options and not _is_torch_dtype(options["dtype"]):
        dtype, known = options["dtype"], vllm_dtypes()
        if not isinstance(dtype, str) or (known and dtype not in known):
            raise Qwen3RerankValueError(
                f"dtype {dtype!r} is not one vLLM accepts (--dtype, or engine_options['dtype']); use one of "
                f"{', '.join(known) or 'auto, bfloat16, float16, float32'}, or a torch.dtype"
            )


def _check_torch_dtype(dtype: Any) -> None:
    if dtype == "auto" or _is_torch_dtype(dtype):
        return
    if importlib.util.find_spec("torch") is None:
        return  # the backend says which extra to install
    import torch

    # 8-bit float formats are storage types, not dtypes a model can compute in.
    names = sorted(
        name
        for name, value in vars(torch).items()
        if isinstance(value, torch.dtype) and value.is_floating_point and value.itemsize >= 2
    )
    if dtype not in names:
        raise Qwen3RerankValueError(
            f"dtype {dtype!r} is not a torch floating-point dtype (--dtype, or engine_options['dtype']); use "
            f"'auto' or one of {', '.join(names)}"
        )
