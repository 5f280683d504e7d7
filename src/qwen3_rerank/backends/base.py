"""What a scoring backend is: token-id prompts in, one relevance score per prompt out, same order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import Qwen3RerankValueError

__all__ = ["ScoringBackend", "ThreadedAsyncMixin", "check_torch_device", "unique_prompts"]


@runtime_checkable
class ScoringBackend(Protocol):
    """The whole surface a backend offers to [`qwen3_rerank.Reranker`][qwen3_rerank.Reranker].

    ``score_prompts`` returns exactly one float in [0, 1] per prompt, in the order given. Prompts are
    complete token-id lists made by [`qwen3_rerank.PromptBuilder`][qwen3_rerank.PromptBuilder]; backends never build
    prompts.

    Callers de-duplicate: a backend scores every prompt it is given, copies included, and two copies
    scored in different batches may differ in the last bits (~1e-8). [`qwen3_rerank.Reranker`][qwen3_rerank.Reranker]
    sends each distinct prompt once (``unique_prompts()``), so identical
    documents get identical scores; a caller that uses a backend directly and needs that does the same.
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


def unique_prompts(prompts: Sequence[Sequence[int]]) -> tuple[list[Sequence[int]], list[int]]:
    """``(unique, slots)``: each distinct prompt once, in first-seen order, and for every input prompt the
    index of its copy in ``unique`` (so ``[scores[s] for s in slots]`` gives scores in input order).

    Scoring identical prompts once gives them bit-identical scores: a float32 score moves by ~1e-8..1e-6
    with the batch (padding, batch composition, prefix-cache hits), and ties are broken by input order
    only if tied documents really score the same.
    """
    slot_of: dict[tuple[int, ...], int] = {}
    unique: list[Sequence[int]] = []
    slots: list[int] = []
    for prompt in prompts:
        key = tuple(prompt)
        slot = slot_of.get(key)
        if slot is None:
            slot = slot_of[key] = len(unique)
            unique.append(prompt)
        slots.append(slot)
    return unique, slots


def check_torch_device(torch: Any, device: Any) -> None:
    """Refuse a CUDA ``device`` torch cannot use, before any weights load.

    Otherwise the first ``.to("cuda")`` fails deep in torch ("Torch not compiled with CUDA enabled"),
    which names neither the argument nor the fix.
    """
    if device is None or not str(device).startswith("cuda") or torch.cuda.is_available():
        return
    why = "this torch is a CPU-only build" if torch.version.cuda is None else "torch sees no CUDA GPU here"
    raise Qwen3RerankValueError(
        f"device={str(device)!r}, but {why}. Pass device='cpu' (or leave device out: a GPU is used when there "
        "is one), or install a CUDA build of torch on a machine with an NVIDIA GPU."
    )
