"""Rerank a first-stage run with a `Reranker` and measure both runs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import Qwen3RerankValueError
from ..progress import progress
from ..validation import check_count
from .beir import BeirDataset
from .metrics import DEFAULT_METRICS, MetricReport, evaluate_run, judged_queries
from .runs import Ranking, Run, ordered

if TYPE_CHECKING:
    from ..reranker import Reranker

__all__ = ["EvalReport", "evaluate_reranker", "rerank_run"]


def _without_identical_ids(run: Run) -> dict[str, Ranking]:
    # BEIR's convention: a document whose id is the query's id is the query itself (ArguAna, Quora).
    return {q: tuple(item for item in ranking if item[0] != q) for q, ranking in run.items()}


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def rerank_run(
    reranker: Reranker,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    first_stage: Run,
    *,
    top_k: int = 100,
    instruction: str | None = None,
    show_progress: bool = False,
) -> dict[str, Ranking]:
    """Rerank the ``top_k`` first documents of each query of ``queries``.

    The reranked documents come first, best first, with their reranker scores; the documents below
    ``top_k`` follow in their first-stage order, with scores -1, -2, ... so that every TREC tool ranks
    them below the reranked ones. Pairs of many queries are scored together (large batches keep the
    engine busy).
    """
    check_count(top_k, "top_k")
    instruction = reranker.instruction if instruction is None else instruction
    slots: list[tuple[str, str]] = []
    pairs: list[tuple[tuple[str, str], str]] = []
    for query_id, query in queries.items():
        for doc_id, _ in first_stage.get(query_id, ())[:top_k]:
            if doc_id not in corpus:
                raise Qwen3RerankValueError(
                    f"the first-stage run ranks document {doc_id!r} for query {query_id!r}, but the corpus has no "
                    "such document; is the run for another dataset?"
                )
            slots.append((query_id, doc_id))
            pairs.append(((instruction, query), corpus[doc_id]))

    scores: list[float] = []
    with progress(len(pairs), enabled=show_progress and bool(pairs), desc="reranking") as bar:
        for batch in _batches(pairs, reranker.batch_size):
            scores.extend(reranker.score_pairs(batch))
            bar.update(len(batch))

    by_query: dict[str, list[tuple[str, float]]] = {query_id: [] for query_id in queries}
    for (query_id, doc_id), score in zip(slots, scores, strict=True):
        by_query[query_id].append((doc_id, score))
    reranked: dict[str, Ranking] = {}
    for query_id, head in by_query.items():
        tail = first_stage.get(query_id, ())[top_k:]
        reranked[query_id] = ordered(head) + tuple((doc_id, -float(i)) for i, (doc_id, _) in enumerate(tail, 1))
    return reranked


@dataclass(frozen=True)
class EvalReport:
    """Metrics of the first stage and of the reranked run, on the same judged queries."""

    dataset: str
    split: str
    instruction: str
    top_k: int
    metrics: tuple[str, ...]
    before: MetricReport
    after: MetricReport
    reranked_run: Mapping[str, Ranking]
    #: queries with at least one relevant document: the ones measured.
    queries_evaluated: int
    #: judged queries with no relevant document, left out of every mean.
    queries_without_relevant: int
    #: measured queries for which the first stage returned nothing (they score 0).
    queries_missing_from_run: int
    pairs_scored: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, overall means (before, after, delta) and per-query values."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "instruction": self.instruction,
            "top_k": self.top_k,
            "queries_evaluated": self.queries_evaluated,
            "queries_without_relevant": self.queries_without_relevant,
            "queries_missing_from_run": self.queries_missing_from_run,
            "pairs_scored": self.pairs_scored,
            "overall": {
                m: {
                    "before": self.before.overall[m],
                    "after": self.after.overall[m],
                    "delta": self.after.overall[m] - self.before.overall[m],
                }
                for m in self.metrics
            },
            "per_query": {
                q: {m: {"before": before[m], "after": self.after.per_query[q][m]} for m in self.metrics}
                for q, before in self.before.per_query.items()
            },
        }


def evaluate_reranker(
    dataset: BeirDataset,
    reranker: Reranker,
    first_stage: Run,
    *,
    top_k: int = 100,
    instruction: str | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ignore_identical_ids: bool = True,
    show_progress: bool = False,
) -> EvalReport:
    """Rerank the judged queries' top ``top_k`` first-stage documents and measure before and after.

    Args:
        dataset: the queries, qrels and (at least the needed part of the) corpus.
        reranker: any [`Reranker`][qwen3_rerank.Reranker] (vLLM, transformers, server ...).
        first_stage: ``{query_id: ((doc_id, score), ...)}`` best first, e.g. from
            [`read_trec_run()`][qwen3_rerank.evaluation.read_trec_run] or
            [`bm25_run()`][qwen3_rerank.evaluation.bm25_run].
        top_k: how many first-stage documents per query to rerank.
        instruction: the task instruction; the reranker's own when None.
        metrics: ranx metric names.
        ignore_identical_ids: drop documents whose id equals the query id first (BEIR's default).
    """
    if ignore_identical_ids:
        first_stage = _without_identical_ids(first_stage)
    measured = judged_queries(dataset.qrels)
    queries = {query_id: dataset.queries[query_id] for query_id in measured}
    reranked = rerank_run(
        reranker,
        queries,
        dataset.corpus,
        first_stage,
        top_k=top_k,
        instruction=instruction,
        show_progress=show_progress,
    )
    metrics = tuple(metrics)
    before = evaluate_run(dataset.qrels, first_stage, metrics)
    after = evaluate_run(dataset.qrels, reranked, metrics)
    return EvalReport(
        dataset=dataset.name,
        split=dataset.split,
        instruction=reranker.instruction if instruction is None else instruction,
        top_k=top_k,
        metrics=metrics,
        before=before,
        after=after,
        reranked_run=MappingProxyType(reranked),
        queries_evaluated=len(measured),
        queries_without_relevant=len(dataset.qrels) - len(measured),
        queries_missing_from_run=sum(1 for q in measured if not first_stage.get(q)),
        pairs_scored=sum(min(top_k, len(first_stage.get(q, ()))) for q in measured),
    )
