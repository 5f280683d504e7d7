"""How a call is scored (calls.Call.run): each distinct prompt once, ``batch_size`` prompts per backend call."""

from __future__ import annotations

import asyncio

import pytest

from qwen3_rerank import EngineError
from qwen3_rerank.calls import Call
from qwen3_rerank.progress import batches


class Recorder:
    """A backend that scores a prompt as its first id / 10 and records every call's prompts."""

    name = "recorder"
    max_prompt_tokens = None

    def __init__(self, lose_one: bool = False) -> None:
        self.calls: list[list[list[int]]] = []
        self.lose_one = lose_one

    def score_prompts(self, prompts):
        self.calls.append([list(p) for p in prompts])
        scores = [p[0] / 10 for p in prompts]
        return scores[:-1] if self.lose_one else scores

    async def ascore_prompts(self, prompts):
        return self.score_prompts(prompts)

    def close(self) -> None:
        pass


PROMPTS = [[1], [2], [1], [3], [4], [2], [5]]


def test_a_call_sends_each_distinct_prompt_once_in_batches_of_batch_size() -> None:
    backend = Recorder()
    assert Call(PROMPTS, list).run(backend, 2, False) == [0.1, 0.2, 0.1, 0.3, 0.4, 0.2, 0.5]
    assert backend.calls == [[[1], [2]], [[3], [4]], [[5]]]
    asynchronous = Recorder()
    assert asyncio.run(Call(PROMPTS, sum).arun(asynchronous, 4, True)) == pytest.approx(1.8)
    assert asynchronous.calls == [[[1], [2], [3], [4]], [[5]]]


def test_a_backend_that_loses_a_score_is_an_engine_error() -> None:
    with pytest.raises(EngineError, match="the backend returned 4 scores for 5 prompts"):
        Call(PROMPTS, list).run(Recorder(lose_one=True), 8, False)


def test_batches_slice_in_order() -> None:
    assert list(batches(list(range(7)), 3, enabled=False, desc="x")) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batches([], 3, enabled=True, desc="x")) == []
