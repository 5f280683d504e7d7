"""The backends qwen3-rerank opens by name: one table, one line per backend.

Everything that names the backends is derived from ``BACKENDS``: the
``Reranker``'s ``backend`` type (``BackendName``, pinned to the table by a
test), the CLI's ``--backend`` choices, the error messages, the adapters' field descriptions, the Ray batch job's GPU
requests ([`needs_gpu()`][qwen3_rerank.backends.registry.needs_gpu]) and the docs' tables (a test checks they mention
every name). Adding a backend is one module and one line here.

Importing this module imports no backend: each one's class is found by its module path when it is opened
(or when its options are checked by the constructor's parameters).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from ..checkpoints import Checkpoint
from ..errors import Qwen3RerankTypeError, Qwen3RerankValueError
from ..validation import check_count
from .base import ScoringBackend
from .option_checks import check_names, check_torch_dtype
from .vllm_options import check_vllm_options

__all__ = [
    "BACKENDS",
    "BACKEND_NAMES",
    "BackendName",
    "BackendSpec",
    "backend_choices",
    "check_backend_name",
    "check_engine_options",
    "loads_checkpoint",
    "needs_gpu",
    "open_backend",
]

#: The names ``Reranker(backend=...)`` takes; a test pins it to the keys of
#: ``BACKENDS``.
BackendName = Literal["vllm", "transformers", "server", "packed"]


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """One backend: where its class is, what installs it, whether it wants a GPU, how it is checked and opened."""

    name: str
    #: one line for the CLI's help and the docs
    summary: str
    #: ``module:Class``, the module relative to ``qwen3_rerank.backends`` (imported only when needed)
    location: str
    #: the pip extra(s) that install what it needs: ``pip install qwen3-rerank[EXTRA]``
    extra: str
    #: a Ray actor of this backend asks for one GPU when the cluster has one
    needs_gpu: bool
    #: it loads the checkpoint in this process (so its config.json is checked before anything loads)
    loads_checkpoint: bool
    #: checks ``engine_options`` (a fresh dict) before anything loads; raises the project's errors
    check: Callable[[BackendSpec, dict[str, Any]], None]
    #: opens it: ``(class, checkpoint, max_length, engine_options) -> backend``
    open: Callable[[Any, Checkpoint, int, dict[str, Any]], ScoringBackend]

    def backend_class(self) -> Any:
        module, _, name = self.location.partition(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), name)


@functools.cache
def _constructor_parameters(spec: BackendSpec) -> frozenset[str]:
    parameters = inspect.signature(spec.backend_class().__init__).parameters
    return frozenset(p for p in parameters if p not in ("self", "model"))


def _check_vllm(spec: BackendSpec, options: dict[str, Any]) -> None:
    check_vllm_options(options)


def _check_torch_backend(spec: BackendSpec, options: dict[str, Any]) -> None:
    check_names(spec.name, options, _constructor_parameters(spec))
    check_torch_dtype(options.get("dtype", "auto"))
    check_count(options.get("batch_size", 1), "engine_options batch_size")


def _check_server(spec: BackendSpec, options: dict[str, Any]) -> None:
    check_names(spec.name, options, _constructor_parameters(spec))
    if "base_urls" not in options:
        raise Qwen3RerankValueError(
            "backend='server' needs engine_options={'base_urls': ['http://HOST:PORT', ...]}, the URLs of "
            "running `vllm serve` servers"
        )


def _open_vllm(cls: Any, checkpoint: Checkpoint, max_length: int, options: dict[str, Any]) -> ScoringBackend:
    return cls(checkpoint, max_length=max_length, engine_options=options)


def _open_transformers(cls: Any, checkpoint: Checkpoint, max_length: int, options: dict[str, Any]) -> ScoringBackend:
    return cls(checkpoint, **options)


def _open_packed(cls: Any, checkpoint: Checkpoint, max_length: int, options: dict[str, Any]) -> ScoringBackend:
    return cls(checkpoint.model, **options)  # it reads the config with transformers as it loads


def _open_server(cls: Any, checkpoint: Checkpoint, max_length: int, options: dict[str, Any]) -> ScoringBackend:
    return cls.from_options(checkpoint.model, options)  # the model names the tokenizer


_TABLE = (
    BackendSpec(
        name="vllm",
        summary="in-process vLLM (the default)",
        location="vllm_backend:VLLMBackend",
        extra="gpu or cpu",
        needs_gpu=True,
        loads_checkpoint=True,
        check=_check_vllm,
        open=_open_vllm,
    ),
    BackendSpec(
        name="transformers",
        summary="Qwen's reference computation with transformers, no vLLM",
        location="transformers_backend:TransformersBackend",
        extra="torch",
        needs_gpu=False,  # the reference: a Ray job gives it a GPU only when asked (gpus_per_actor)
        loads_checkpoint=True,
        check=_check_torch_backend,
        open=_open_transformers,
    ),
    BackendSpec(
        name="server",
        summary="running vLLM servers (engine_options base_urls)",
        location="server_backend:ServerBackend",
        extra="server",
        needs_gpu=False,
        loads_checkpoint=False,
        check=_check_server,
        open=_open_server,
    ),
    BackendSpec(
        name="packed",
        summary="shared-prefix, padding-free scoring on one GPU or the CPU, no vLLM",
        location="packed_backend:PackedBackend",
        extra="torch",
        needs_gpu=True,
        loads_checkpoint=True,
        check=_check_torch_backend,
        open=_open_packed,
    ),
)

#: name -> backend, in the order the docs and the CLI list them
BACKENDS: Mapping[str, BackendSpec] = MappingProxyType({spec.name: spec for spec in _TABLE})
BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)


def backend_choices() -> str:
    """The names as a sentence: ``'vllm', 'transformers', 'server' or 'packed'``."""
    quoted = [repr(name) for name in BACKEND_NAMES]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _spec(name: Any) -> BackendSpec:
    spec = BACKENDS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise Qwen3RerankValueError(f"backend must be {backend_choices()} (or a ScoringBackend object), got {name!r}")
    return spec


def check_backend_name(backend: Any) -> None:
    """A str ``backend`` must name a backend of the table (a backend object is the caller's to check)."""
    if isinstance(backend, str):
        _spec(backend)


def loads_checkpoint(backend: Any) -> bool:
    """Whether ``backend`` (a name, or a backend object: False) loads the checkpoint in this process."""
    return isinstance(backend, str) and _spec(backend).loads_checkpoint


def needs_gpu(name: str) -> bool:
    """Whether a Ray actor of backend ``name`` asks for a GPU when the cluster has one."""
    return _spec(name).needs_gpu


def check_engine_options(backend: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``options`` once every name is one ``backend`` takes and ``dtype`` is one it knows."""
    spec = _spec(backend)
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
    spec.check(spec, options)
    return options


def open_backend(
    backend: str, checkpoint: Checkpoint | str, max_length: int, engine_options: Mapping[str, Any] | None
) -> ScoringBackend:
    """Open backend ``backend`` on a checkpoint (or a model name) with (checked) ``engine_options``."""
    spec = _spec(backend)
    if isinstance(checkpoint, str):
        checkpoint = Checkpoint.resolve(checkpoint) if spec.loads_checkpoint else Checkpoint.cached(checkpoint)
    return spec.open(spec.backend_class(), checkpoint, max_length, dict(engine_options or {}))
