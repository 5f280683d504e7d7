"""Test doubles shared by several test modules."""

from __future__ import annotations

from qwen3_rerank import EngineError

__all__ = ["CountingBackend"]


class CountingBackend:
    """Deterministic scores from the prompt ids; can fail on a chosen call, like an engine that dies."""

    name = "counting"
    max_prompt_tokens = None

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls: list[int] = []
        self.fail_on_call = fail_on_call

    def score_prompts(self, prompts):
        self.calls.append(len(prompts))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise EngineError("engine died (injected)")
        return [(sum(ids) * 2654435761 % 1000003) / 1000003 for ids in prompts]

    async def ascore_prompts(self, prompts):
        return self.score_prompts(prompts)

    def close(self) -> None:
        pass
