"""A BM25 first stage with bm25s, for datasets that come without a run."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import BackendNotInstalledError, Qwen3RerankValueError
from ..validation import check_count
from .runs import Ranking, ordered

__all__ = ["bm25_run"]


def bm25_run(
    corpus: Mapping[str, str], queries: Mapping[str, str], *, depth: int = 100, show_progress: bool = False
) -> dict[str, Ranking]:
    """The ``depth`` best BM25 documents per query (Lucene BM25, English stopwords, no stemming).

    Documents sharing no term with the query score 0 and are left out, so a query can get fewer than
    ``depth`` documents.
    """
    depth = check_count(depth, "depth", note="documents per query")
    try:
        import bm25s
    except ImportError as exc:
        raise BackendNotInstalledError("The BM25 first stage needs bm25s: pip install qwen3-rerank[eval]") from exc
    if not corpus:
        raise Qwen3RerankValueError("the corpus is empty; BM25 has nothing to index")
    doc_ids = list(corpus)
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(list(corpus.values()), stopwords="en", show_progress=show_progress),
        show_progress=show_progress,
    )
    query_ids = list(queries)
    # Token strings, not ids: bm25s maps them onto the corpus vocabulary (ids from a second tokenize
    # call would belong to a different vocabulary).
    tokens = bm25s.tokenize([queries[q] for q in query_ids], stopwords="en", return_ids=False, show_progress=False)
    run: dict[str, Ranking] = {query_id: () for query_id in query_ids}
    # A query made only of stopwords has no tokens and retrieves nothing.
    searchable = [(q, t) for q, t in zip(query_ids, tokens, strict=True) if t]
    if searchable:
        indices, scores = retriever.retrieve(
            [t for _, t in searchable], k=min(depth, len(doc_ids)), show_progress=show_progress
        )
        for (query_id, _), row_indices, row_scores in zip(searchable, indices, scores, strict=True):
            run[query_id] = ordered(
                (doc_ids[int(i)], float(s)) for i, s in zip(row_indices, row_scores, strict=True) if s > 0
            )
    return run
