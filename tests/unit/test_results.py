"""Ranking semantics (order_by_score) without an engine: ties, threshold, top_n, immutability."""

from __future__ import annotations

import dataclasses

import pytest

from qwen3_rerank.results import RankedDocument, order_by_score

DOCS = ["a", "b", "c", "d", "e"]
SCORES = [0.5, 0.9, 0.5, 0.1, 0.9]


def _order(ranked: tuple[RankedDocument, ...]) -> list[int]:
    return [r.index for r in ranked]


def test_best_first_and_equal_scores_keep_input_order() -> None:
    ranked = order_by_score(DOCS, SCORES)
    # 0.9 at 1 and 4, 0.5 at 0 and 2: each tie in input order. Reversed ties would give [4, 1, 2, 0, 3].
    assert _order(ranked) == [1, 4, 0, 2, 3]
    assert [(r.document, r.score) for r in ranked] == [("b", 0.9), ("e", 0.9), ("a", 0.5), ("c", 0.5), ("d", 0.1)]


def test_all_equal_scores_are_the_input_order() -> None:
    assert _order(order_by_score(DOCS, [0.25] * 5)) == [0, 1, 2, 3, 4]


def test_threshold_keeps_scores_at_or_above_it() -> None:
    assert _order(order_by_score(DOCS, SCORES, threshold=0.5)) == [1, 4, 0, 2]
    assert _order(order_by_score(DOCS, SCORES, threshold=0.5000001)) == [1, 4]
    assert order_by_score(DOCS, SCORES, threshold=0.95) == ()


def test_top_n_applies_after_the_threshold_and_cuts_inside_a_tie_by_input_order() -> None:
    assert _order(order_by_score(DOCS, SCORES, top_n=3)) == [1, 4, 0]
    assert _order(order_by_score(DOCS, SCORES, top_n=1)) == [1]
    assert _order(order_by_score(DOCS, SCORES, top_n=3, threshold=0.6)) == [1, 4]
    assert order_by_score(DOCS, SCORES, top_n=0) == ()
    assert _order(order_by_score(DOCS, SCORES, top_n=99)) == [1, 4, 0, 2, 3]


def test_duplicates_are_kept_once_each() -> None:
    ranked = order_by_score(["x", "x", "y"], [0.2, 0.2, 0.3])
    assert [(r.index, r.document) for r in ranked] == [(2, "y"), (0, "x"), (1, "x")]


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError):
        order_by_score(DOCS, SCORES[:-1])


def test_results_are_immutable() -> None:
    ranked = order_by_score(DOCS, SCORES)
    assert isinstance(ranked, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ranked[0].score = 1.0  # type: ignore[misc]
