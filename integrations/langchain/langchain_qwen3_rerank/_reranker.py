"""What the compressor and the cross-encoder share: which model they use, and with what reranker."""

from __future__ import annotations

from typing import Any

from qwen3_rerank import DEFAULT_MODEL, Reranker


def chosen_model(model: str | None, reranker: Reranker | None, options: dict[str, Any]) -> str:
    """The model an adapter uses, after checking that ``model``, ``reranker`` and ``options`` agree.

    A passed-in reranker is used as is (so several adapters share one engine): options for a new
    Reranker cannot apply to it, and a different model name would be a contradiction.
    """
    if reranker is None:
        return DEFAULT_MODEL if model is None else model
    if not isinstance(reranker, Reranker):
        raise TypeError(f"reranker must be a qwen3_rerank.Reranker, got {type(reranker).__name__}")
    if options:
        raise ValueError(
            f"{sorted(options)} configure a new Reranker; they cannot apply to the reranker you passed. "
            "Set them when you create that Reranker, or pass model=... instead."
        )
    if model is not None and model != reranker.model:
        raise ValueError(f"model={model!r} differs from the reranker's model {reranker.model!r}; pass one")
    return reranker.model
