"""Retrieval metrics, computed by ranx (trec_eval definitions: NDCG with linear gain, relevance >= 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import BackendNotInstalledError, Qwen3RerankValueError
from .runs import Run

__all__ = ["DEFAULT_METRICS", "MetricReport", "evaluate_run", "judged_queries", "metric_label"]

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "recall@10", "recall@100")

_LABELS = {"ndcg": "NDCG", "mrr": "MRR", "recall": "Recall", "precision": "P", "map": "MAP", "hit_rate": "HitRate"}


def metric_label(metric: str) -> str:
    """``"ndcg@10"`` -> ``"NDCG@10"``."""
    name, sep, cutoff = metric.partition("@")
    return f"{_LABELS.get(name, name)}{sep}{cutoff}"


@dataclass(frozen=True)
class MetricReport:
    """Mean and per-query values of each metric, over the same queries."""

    overall: Mapping[str, float]
    per_query: Mapping[str, Mapping[str, float]]


def judged_queries(qrels: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Queries with at least one relevant (relevance >= 1) document: the ones a metric can say something about."""
    return [query_id for query_id, docs in qrels.items() if any(rel >= 1 for rel in docs.values())]


def evaluate_run(
    qrels: Mapping[str, Mapping[str, int]], run: Run, metrics: Sequence[str] = DEFAULT_METRICS
) -> MetricReport:
    """Evaluate ``run`` on the judged queries of ``qrels``.

    Each ranking is taken in the order it has (ranx sees rank-derived scores, so ties cannot be
    reordered); a judged query missing from the run counts as retrieving nothing.
    """
    try:
        from ranx import Qrels, evaluate
        from ranx import Run as RanxRun
    except ImportError as exc:
        raise BackendNotInstalledError("Evaluation needs ranx: pip install qwen3-rerank[eval]") from exc
    metrics = list(metrics)
    if not metrics:
        raise Qwen3RerankValueError("no metrics to compute")
    queries = judged_queries(qrels)
    if not queries:
        raise Qwen3RerankValueError(
            "the qrels judge no document relevant (relevance >= 1); there is nothing to evaluate"
        )
    ranx_qrels = Qrels({q: dict(qrels[q]) for q in queries})
    ranked = {}
    for query_id in queries:
        ranking = run.get(query_id, ())
        ranked[query_id] = {doc_id: float(len(ranking) - position) for position, (doc_id, _) in enumerate(ranking)}
    ranx_run = RanxRun(ranked)
    try:
        means = evaluate(ranx_qrels, ranx_run, metrics, make_comparable=True)
    except (KeyError, ValueError, AssertionError) as exc:
        raise Qwen3RerankValueError(f"ranx cannot compute {metrics}: {exc}") from exc
    if len(metrics) == 1:
        means = {metrics[0]: means}
    per_query = {
        query_id: MappingProxyType({m: float(ranx_run.scores[m][query_id]) for m in metrics}) for query_id in queries
    }
    return MetricReport(
        overall=MappingProxyType({m: float(means[m]) for m in metrics}), per_query=MappingProxyType(per_query)
    )
