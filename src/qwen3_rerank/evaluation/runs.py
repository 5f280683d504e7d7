"""Runs (ranked document lists per query): TREC run files, ordering, and the first-stage cut.

A run here is ``{query_id: ((doc_id, score), ...)}`` with each list best first. Ties are broken the way
trec_eval breaks them (higher score first, then the larger document id), so a run written to a file and
read back by any TREC tool ranks the same way as it does here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import Qwen3RerankValueError

__all__ = ["Ranking", "Run", "ordered", "read_trec_run", "write_trec_run"]

#: one query's documents, best first: ((doc_id, score), ...)
Ranking = tuple[tuple[str, float], ...]
Run = Mapping[str, Ranking]


def ordered(scored: Iterable[tuple[str, float]]) -> Ranking:
    """Best first; equal scores put the larger document id first, as trec_eval does."""
    items = list(scored)
    # Two stable sorts: by doc id descending, then by score descending.
    items.sort(key=lambda item: item[0], reverse=True)
    items.sort(key=lambda item: item[1], reverse=True)
    return tuple(items)


def read_trec_run(path: str | Path) -> dict[str, Ranking]:
    """Read ``qid Q0 docid rank score tag`` lines. The rank column is ignored, as trec_eval ignores it."""
    path = Path(path)
    scores: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise Qwen3RerankValueError(
                    f"{path}:{line_no}: a TREC run line has 6 fields (qid Q0 docid rank score tag), got {len(fields)}"
                )
            query_id, _, doc_id, _, score, _ = fields
            try:
                value = float(score)
            except ValueError:
                raise Qwen3RerankValueError(f"{path}:{line_no}: the score {score!r} is not a number") from None
            docs = scores.setdefault(query_id, {})
            if doc_id in docs:
                raise Qwen3RerankValueError(
                    f"{path}:{line_no}: document {doc_id!r} appears twice for query {query_id!r}"
                )
            docs[doc_id] = value
    return {query_id: ordered(docs.items()) for query_id, docs in scores.items()}


def write_trec_run(run: Run, path: str | Path, tag: str = "qwen3-rerank") -> Path:
    """Write a run file, each query's documents in the run's order; scores keep their full precision."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for query_id, ranking in run.items():
            for rank, (doc_id, score) in enumerate(ranking, 1):
                if len(query_id.split()) != 1 or len(doc_id.split()) != 1:
                    raise Qwen3RerankValueError(
                        f"query id {query_id!r} / document id {doc_id!r}: TREC run files cannot hold ids that are "
                        "empty or contain whitespace"
                    )
                handle.write(f"{query_id} Q0 {doc_id} {rank} {float(score)!r} {tag}\n")
    tmp.replace(path)
    return path
