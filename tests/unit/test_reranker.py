"""The Reranker API: order, pairs, ranking semantics, async, lifetime and engine sharing."""

from __future__ import annotations

import asyncio

import pytest

from qwen3_rerank import DEFAULT_INSTRUCTION, EngineError, RankedDocument, Reranker
from qwen3_rerank.backends.vllm_backend import live_engine_count

pytestmark = pytest.mark.vllm

DOCS = [
    "Paris is the capital of France.",
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",  # a duplicate: same score, kept, in input order
    "",
    "Cats purr when content.",
]


def test_score_is_in_input_order(vllm_reranker) -> None:
    scores = vllm_reranker.score("capital of France", DOCS)
    assert [vllm_reranker.score("capital of France", [d])[0] for d in DOCS] == pytest.approx(scores, abs=1e-6)
    assert scores[0] == scores[2]


def test_pairs_score_like_one_query(vllm_reranker) -> None:
    pairs = [("capital of France", d) for d in DOCS]
    assert vllm_reranker.score_pairs(pairs) == vllm_reranker.score("capital of France", DOCS)


def test_instruction_per_reranker_call_and_pair(vllm_reranker, prompt_builder) -> None:
    q, d = "capital of France", DOCS[0]
    default = vllm_reranker.score(q, [d])[0]
    per_call = vllm_reranker.score(q, [d], instruction="Find the country")[0]
    as_tuple = vllm_reranker.score(("Find the country", q), [d])[0]
    per_pair = vllm_reranker.score_pairs([(("Find the country", q), d), (q, d)])
    assert per_call != default
    assert per_call == as_tuple == per_pair[0]
    assert per_pair[1] == default
    # a query tuple's own instruction wins over the call's
    assert vllm_reranker.score(("Find the country", q), [d], instruction="other")[0] == per_call
    assert vllm_reranker.instruction == DEFAULT_INSTRUCTION


def test_rank_best_first_ties_in_input_order(vllm_reranker) -> None:
    scores = vllm_reranker.score("capital of France", DOCS)
    ranked = vllm_reranker.rank("capital of France", DOCS)
    assert all(isinstance(r, RankedDocument) for r in ranked)
    assert sorted(r.index for r in ranked) == list(range(len(DOCS)))
    assert [r.score for r in ranked] == sorted(scores, reverse=True)
    assert all(r.document == DOCS[r.index] and r.score == scores[r.index] for r in ranked)
    i0, i2 = [k for k, r in enumerate(ranked) if r.index in (0, 2)]
    assert ranked[i0].index == 0 and ranked[i2].index == 2 and i2 == i0 + 1


def test_rank_top_n_and_threshold(vllm_reranker) -> None:
    ranked = vllm_reranker.rank("capital of France", DOCS)
    assert vllm_reranker.rank("capital of France", DOCS, top_n=2) == ranked[:2]
    assert vllm_reranker.rank("capital of France", DOCS, top_n=99) == ranked
    cut = ranked[2].score
    above = vllm_reranker.rank("capital of France", DOCS, threshold=cut)
    assert above == tuple(r for r in ranked if r.score >= cut)
    assert vllm_reranker.rank("capital of France", DOCS, top_n=1, threshold=cut) == ranked[:1]
    assert vllm_reranker.rank("capital of France", DOCS, threshold=1.0) == tuple(r for r in ranked if r.score >= 1.0)


def test_results_are_immutable(vllm_reranker) -> None:
    result = vllm_reranker.rank("q", ["a"])[0]
    with pytest.raises(AttributeError):
        result.score = 1.0  # type: ignore[misc]


def test_empty_documents_give_empty_results(vllm_reranker) -> None:
    assert vllm_reranker.score("q", []) == []
    assert vllm_reranker.rank("q", []) == ()
    assert vllm_reranker.score_pairs([]) == []


async def test_async_variants_equal_sync(vllm_reranker) -> None:
    sync_scores = vllm_reranker.score("capital of France", DOCS)
    assert await vllm_reranker.ascore("capital of France", DOCS) == sync_scores
    assert await vllm_reranker.ascore_pairs([("capital of France", d) for d in DOCS]) == sync_scores
    assert await vllm_reranker.acompute_scores([("capital of France", d) for d in DOCS]) == sync_scores
    assert await vllm_reranker.arank("capital of France", DOCS, top_n=3) == vllm_reranker.rank(
        "capital of France", DOCS, top_n=3
    )


class _Watched:
    """Forwards to a backend and counts the event loop's ticks while each ``ascore_prompts`` call runs.

    Only the engine call is watched: prompts are built in a worker thread before it, so ticks during
    prompt building say nothing about the backend.
    """

    name = "watched"

    def __init__(self, inner, *, blocking: bool = False) -> None:
        self.inner, self.blocking = inner, blocking
        self.max_prompt_tokens = inner.max_prompt_tokens
        self.ticks = 0
        self.ticks_during_calls: list[int] = []

    def score_prompts(self, prompts):
        return self.inner.score_prompts(prompts)

    async def ascore_prompts(self, prompts):
        before = self.ticks
        if self.blocking:  # what a careless backend does: the synchronous engine call on the loop
            scores = self.inner.score_prompts(prompts)
        else:
            scores = await self.inner.ascore_prompts(prompts)
        self.ticks_during_calls.append(self.ticks - before)
        return scores

    def close(self) -> None:
        pass


async def _ticks_during_engine_calls(backend, tiny_model_dir, *, blocking: bool) -> list[int]:
    watched = _Watched(backend, blocking=blocking)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0)
            watched.ticks += 1

    task = asyncio.create_task(ticker())
    try:
        with Reranker(str(tiny_model_dir), backend=watched, batch_size=16) as reranker:
            # 32 distinct documents (identical ones would be scored once): two engine calls of 16.
            await reranker.ascore("q", ["word " * 500 + f"doc {k}" for k in range(32)])
    finally:
        task.cancel()
    return watched.ticks_during_calls


async def test_async_does_not_block_the_event_loop(vllm_reranker, tiny_model_dir) -> None:
    ticks = await _ticks_during_engine_calls(vllm_reranker.backend, tiny_model_dir, blocking=False)
    assert len(ticks) == 2 and all(t > 0 for t in ticks), ticks
    # The same check on a backend that runs the engine on the loop sees no tick at all: it can fail.
    assert await _ticks_during_engine_calls(vllm_reranker.backend, tiny_model_dir, blocking=True) == [0, 0]


def test_small_batches_give_the_same_scores(vllm_reranker, tiny_model_dir) -> None:
    with Reranker(str(tiny_model_dir), backend=vllm_reranker.backend, batch_size=2, show_progress=True) as small:
        assert small.score("capital of France", DOCS) == vllm_reranker.score("capital of France", DOCS)
    assert not vllm_reranker.closed and vllm_reranker.backend.engine is not None  # a borrowed backend stays open


def test_engine_is_shared_and_released(vllm_reranker, tiny_model_dir) -> None:
    from conftest import TEST_ENGINE_OPTIONS

    before = live_engine_count()
    other = Reranker(str(tiny_model_dir), engine_options=TEST_ENGINE_OPTIONS)
    try:
        assert live_engine_count() == before  # same (model, options): the session's engine
        assert other.backend.engine is vllm_reranker.backend.engine
        assert other.score("q", DOCS) == vllm_reranker.score("q", DOCS)
    finally:
        other.close()
    assert live_engine_count() == before  # still held by the session reranker
    assert vllm_reranker.score("q", ["still works"])  # closing one user does not close the shared engine
    assert other.closed
    other.close()  # idempotent
    with pytest.raises(EngineError, match="closed"):
        other.score("q", ["x"])


def test_context_manager_closes(reference_reranker, tiny_model_dir) -> None:
    with Reranker(str(tiny_model_dir), backend="transformers", engine_options={"dtype": "float32"}) as r:
        assert r.score("q", ["d"]) == reference_reranker.score("q", ["d"])
    assert r.closed
    assert "closed" in repr(r)
