"""Checks shared by the backends' ``engine_options`` checks: option names against what a backend takes,
and torch dtypes. The backend table ([`registry`][qwen3_rerank.backends.registry]) says which check each backend
uses."""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import Qwen3RerankTypeError, Qwen3RerankValueError

__all__ = ["check_names", "check_torch_dtype", "is_torch_dtype"]


def check_names(backend: str, options: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Every option name is one ``backend`` takes; else the closest valid names and the full list."""
    valid = frozenset(valid)
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


def is_torch_dtype(value: Any) -> bool:
    """A ``torch.dtype``, recognised without importing torch."""
    return type(value).__module__ == "torch" and type(value).__name__ == "dtype"


def check_torch_dtype(dtype: Any) -> None:
    """``dtype`` is ``'auto'``, a ``torch.dtype`` or the name of a floating-point one a model computes in."""
    if dtype == "auto" or is_torch_dtype(dtype):
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
