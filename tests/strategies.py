"""Hypothesis settings and strategies shared by the property tests (queries, documents, control-token texts)."""

from __future__ import annotations

import itertools
import json
import math
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from paths import FIXTURES

from qwen3_rerank import RankedDocument

__all__ = [
    "CONTROL_TEXTS",
    "LONG",
    "TOL",
    "by_index",
    "check_ranking",
    "check_scores",
    "close",
    "doc_texts",
    "documents",
    "prop_settings",
    "queries",
]

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
#: how many times the CI case count the long run makes (``HYPOTHESIS_LONG_FACTOR``, default 50)
LONG_FACTOR = int(os.environ.get("HYPOTHESIS_LONG_FACTOR", "50"))
TOL = 1e-5


def examples(ci: int) -> int:
    """Cases per property: ``ci`` in CI, ``LONG_FACTOR`` times that in the long run."""
    return ci * LONG_FACTOR if LONG else ci


def prop_settings(ci: int) -> settings:
    return settings(
        max_examples=examples(ci),
        deadline=None,
        derandomize=not LONG,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- strategies --------------------------------------------------------------------------------------

_FORGERY = json.loads((FIXTURES / "forgery" / "corpus.json").read_text(encoding="utf-8"))
CONTROL_TEXTS = sorted({entry["text"] for entry in _FORGERY if entry["naive_forges"]})

any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)
blank = st.sampled_from(["", " ", "  ", "\n", "\t \n", "\r\n", "\u200b", "\u3000", "\u00a0", "\ufeff"])
control = st.sampled_from(CONTROL_TEXTS)
spliced = st.tuples(any_text, control, any_text).map("".join)
huge = st.builds(
    lambda unit, n: unit * n, st.sampled_from(["purr ", "x", "日本", "😀", "<|im_end|>"]), st.integers(2_000, 30_000)
)


def doc_texts(allow_huge: bool = True) -> st.SearchStrategy[str]:
    small = st.one_of(any_text, blank, control, spliced)
    if not allow_huge:
        return small
    # about one document in twelve is huge (each is a max_length prompt: costly on CPU)
    return st.integers(0, 11).flatmap(lambda k: huge if k == 0 else small)


@st.composite
def documents(draw: st.DrawFn, max_size: int = 10, allow_huge: bool = True) -> list[str]:
    base = draw(st.lists(doc_texts(allow_huge), max_size=max_size))
    if base:  # duplicates, anywhere
        base += draw(st.lists(st.sampled_from(base), max_size=3))
    return draw(st.permutations(base))


# An empty or whitespace-only query is refused (docs/reliability.md, tests/unit/test_validation.py): queries have text.
query_text = any_text.filter(lambda text: bool(text.strip()))
queries = st.one_of(query_text, control, st.tuples(st.one_of(any_text, control), query_text))


# -- checks ------------------------------------------------------------------------------------------


def check_scores(scores: object, docs: list[str]) -> list[float]:
    assert isinstance(scores, list) and len(scores) == len(docs)
    for s in scores:
        assert type(s) is float and math.isfinite(s) and 0.0 <= s <= 1.0
    for i, d in enumerate(docs):  # identical documents: identical scores, within one call
        j = docs.index(d)
        assert scores[i] == scores[j]
    return scores


def check_ranking(ranked: object, docs: list[str]) -> tuple[RankedDocument, ...]:
    """Every document exactly once, with its own text; best first; equal scores in input order."""
    assert isinstance(ranked, tuple) and all(isinstance(r, RankedDocument) for r in ranked)
    assert sorted(r.index for r in ranked) == list(range(len(docs)))
    for r in ranked:
        assert r.document == docs[r.index]
    for a, b in itertools.pairwise(ranked):
        assert a.score > b.score or (a.score == b.score and a.index < b.index)
    check_scores([r.score for r in sorted(ranked, key=lambda r: r.index)], docs)
    return ranked


def close(got: list[float], want: list[float], tol: float = TOL) -> bool:
    return len(got) == len(want) and all(abs(a - b) <= tol for a, b in zip(got, want, strict=True))


def by_index(ranked: tuple[RankedDocument, ...], n: int) -> list[float]:
    out = [math.nan] * n
    for r in ranked:
        out[r.index] = r.score
    return out


# -- properties --------------------------------------------------------------------------------------
