"""Property tests of the public API: for any documents, every one comes back exactly once with its own score.

Generated inputs: any Unicode, empty and whitespace strings, control-token spellings and turn-switch
attacks, huge documents (past max_length, so truncated), and duplicates. Each property runs on the vLLM
backend (the session engine) and on the transformers reference (short documents only there: a
max_length prompt costs seconds on CPU with transformers).

CI runs a few dozen cases per property (``derandomize``: the same cases every run). The long run:
``HYPOTHESIS_PROFILE=long pytest tests/unit/test_reranker_properties.py tests/unit/test_prompt_fuzz.py
-p no:cacheprovider --hypothesis-show-statistics`` runs 50x more (``HYPOTHESIS_LONG_FACTOR=N`` for N x), with
fresh random cases.

Across two calls vLLM may move the score of a long prompt by about 1e-6 (prefix-cache hits and chunked
prefill change float32 rounding; 1.2e-6 measured on a max_length prompt), so cross-call comparisons use
``abs=1e-5``, the tolerance vLLM-vs-reference tests use too; within one call everything is exact. How often
repeats are bitwise equal is reported in the Hypothesis statistics.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from strategies import by_index, check_ranking, check_scores, close, doc_texts, documents, prop_settings, queries

from qwen3_rerank import Reranker


def every_document_once_with_its_own_score(reranker: Reranker, query, docs, perm) -> None:
    before = list(docs)
    scores = check_scores(reranker.score(query, docs), docs)
    assert docs == before  # the caller's list is untouched
    # its own score: a shuffled list gives each document the same score back
    shuffled = [docs[i] for i in perm]
    again = check_scores(reranker.score(query, shuffled), shuffled)
    assert close(again, [scores[i] for i in perm])
    event(f"shuffled repeat bitwise equal: {again == [scores[i] for i in perm]}")
    # ... and the same as one (query, document) pair at a time, all in one call
    pairs = check_scores(reranker.score_pairs([(query, d) for d in docs]), docs)
    assert close(pairs, scores)


def ranking_keeps_everything(reranker: Reranker, query, docs) -> None:
    ranked = check_ranking(reranker.rank(query, docs), docs)
    assert close(by_index(ranked, len(docs)), reranker.score(query, docs))
    event(f"documents: {min(len(docs), 10)}{'+' if len(docs) >= 10 else ''}")


def top_n_and_threshold(reranker: Reranker, query, docs, top_n, pick, threshold) -> None:
    full = check_ranking(reranker.rank(query, docs), docs)
    if pick is not None and full:  # a threshold equal to a real score: ">=" keeps that document
        threshold = full[pick % len(full)].score
    got = reranker.rank(query, docs, top_n=top_n, threshold=threshold)
    kept = [r for r in full if threshold is None or r.score >= threshold]
    assert got == tuple(kept[:top_n])
    assert top_n is None or len(got) <= top_n
    assert threshold is None or all(r.score >= threshold for r in got)


def async_equals_sync(reranker: Reranker, query, docs) -> None:
    async def calls():
        return await asyncio.gather(
            reranker.ascore(query, docs),
            reranker.arank(query, docs),
            reranker.ascore_pairs([(query, d) for d in docs]),
        )

    scores, ranked, pairs = asyncio.run(calls())  # a fresh event loop every case
    check_scores(scores, docs)
    assert close(by_index(check_ranking(ranked, docs), len(docs)), scores)
    assert close(pairs, scores)
    assert close(reranker.score(query, docs), scores)


def pairs_map_to_their_own_query(reranker: Reranker, items) -> None:
    pairs = [(q, d) for q, d in items]
    scores = check_scores(reranker.score_pairs(pairs), [repr(p) for p in pairs])
    for query in {q for q, _ in items}:
        positions = [k for k, (q, _) in enumerate(items) if q == query]
        alone = reranker.score(query, [items[k][1] for k in positions])
        assert close([scores[k] for k in positions], alone)


# -- the tests: each property on both backends ------------------------------------------------------

vllm = pytest.mark.vllm


@vllm
@prop_settings(30)
@given(query=queries, docs=documents(), data=st.data())
def test_vllm_every_document_once_with_its_own_score(vllm_reranker, query, docs, data) -> None:
    every_document_once_with_its_own_score(vllm_reranker, query, docs, data.draw(st.permutations(range(len(docs)))))


@prop_settings(15)
@given(query=queries, docs=documents(max_size=6, allow_huge=False), data=st.data())
def test_reference_every_document_once_with_its_own_score(reference_reranker, query, docs, data) -> None:
    perm = data.draw(st.permutations(range(len(docs))))
    every_document_once_with_its_own_score(reference_reranker, query, docs, perm)


@vllm
@prop_settings(30)
@given(query=queries, docs=documents())
def test_vllm_ranking_keeps_every_document(vllm_reranker, query, docs) -> None:
    ranking_keeps_everything(vllm_reranker, query, docs)


@prop_settings(15)
@given(query=queries, docs=documents(max_size=6, allow_huge=False))
def test_reference_ranking_keeps_every_document(reference_reranker, query, docs) -> None:
    ranking_keeps_everything(reference_reranker, query, docs)


top_ns = st.one_of(st.none(), st.integers(1, 15))
thresholds = st.one_of(st.none(), st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))
picks = st.one_of(st.none(), st.integers(0, 20))


@vllm
@prop_settings(30)
@given(query=queries, docs=documents(allow_huge=False), top_n=top_ns, pick=picks, threshold=thresholds)
def test_vllm_top_n_and_threshold(vllm_reranker, query, docs, top_n, pick, threshold) -> None:
    # Short documents only: both calls then score bitwise alike, so the cut can be compared exactly.
    top_n_and_threshold(vllm_reranker, query, docs, top_n, pick, threshold)


@prop_settings(15)
@given(query=queries, docs=documents(max_size=6, allow_huge=False), top_n=top_ns, pick=picks, threshold=thresholds)
def test_reference_top_n_and_threshold(reference_reranker, query, docs, top_n, pick, threshold) -> None:
    top_n_and_threshold(reference_reranker, query, docs, top_n, pick, threshold)


@vllm
@prop_settings(20)
@given(query=queries, docs=documents())
def test_vllm_async_equals_sync(vllm_reranker, query, docs) -> None:
    async_equals_sync(vllm_reranker, query, docs)


@vllm
@prop_settings(20)
@given(
    items=st.lists(
        st.tuples(st.sampled_from(["q1", "<|im_end|>", ("Find recipes", "q1"), "q2 "]), doc_texts()), max_size=12
    )
)
def test_vllm_pairs_map_to_their_own_query(vllm_reranker, items) -> None:
    pairs_map_to_their_own_query(vllm_reranker, items)


@vllm
@prop_settings(20)
@given(docs=documents(max_size=6))
def test_vllm_same_input_same_scores(vllm_reranker, docs) -> None:
    first = vllm_reranker.score("a fixed query", docs)
    second = vllm_reranker.score("a fixed query", docs)
    assert close(first, second)
    worst = max((abs(a - b) for a, b in zip(first, second, strict=True)), default=0.0)
    event(f"repeat differs by: {'0' if worst == 0 else f'<= {10 ** math.ceil(math.log10(worst)):g}'}")


def test_an_empty_list_is_a_defined_result(reference_reranker) -> None:
    assert reference_reranker.score("q", []) == []
    assert reference_reranker.rank("q", [], top_n=3, threshold=0.5) == ()
    assert reference_reranker.score_pairs([]) == []
    assert asyncio.run(reference_reranker.arank("q", [])) == ()
