"""What every framework adapter shares: which model it uses, and whether it makes its own reranker.

Kept in the core so the LlamaIndex and LangChain distributions agree on one rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import Qwen3RerankTypeError, Qwen3RerankValueError
from .reranker import DEFAULT_MODEL, Reranker

__all__ = ["chosen_model"]


def chosen_model(model: str | None, reranker: Reranker | None, options: Mapping[str, Any]) -> str:
    """The model an adapter uses, after checking that ``model``, ``reranker`` and ``options`` agree.

    A passed-in reranker is used as is (so several adapters share one engine): options for a new
    Reranker cannot apply to it, and a different model name would be a contradiction.
    """
    if reranker is None:
        return DEFAULT_MODEL if model is None else model
    if not isinstance(reranker, Reranker):
        raise Qwen3RerankTypeError(f"reranker must be a qwen3_rerank.Reranker, got {type(reranker).__name__}")
    if options:
        raise Qwen3RerankValueError(
            f"{sorted(options)} configure a new Reranker; they cannot apply to the reranker you passed. "
            "Set them when you create that Reranker, or pass model=... instead."
        )
    if model is not None and model != reranker.model:
        raise Qwen3RerankValueError(f"model={model!r} differs from the reranker's model {reranker.model!r}; pass one")
    return reranker.model
