"""What a scoring backend is: token-id prompts in, one relevance score per prompt out, same order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["ScoringBackend", "ThreadedAsyncMixin"]


@runtime_checkable
class ScoringBackend(Protocol):
    """The whole surface a backend offers to :class:`qwen3_rerank.Reranker`.

    ``score_prompts`` returns exactly one float in [0, 1] per prompt, in the order given. Prompts are
    complete token-id lists made by :class:`qwen3_rerank.PromptBuilder`; backends never build prompts.
    """

    name: str
    #: the longest prompt (in tokens) this backend accepts; None when it cannot tell.
    max_prompt_tokens: int | None

    def score_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]: ...

    async def ascore_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]: ...

    def close(self) -> None: ...


class ThreadedAsyncMixin:
    """Async scoring for backends whose engine is synchronous: the work runs in a worker thread, so
    the event loop is never blocked."""

    def score_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:  # pragma: no cover
        raise NotImplementedError

    async def ascore_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        return await asyncio.to_thread(self.score_prompts, prompts)
