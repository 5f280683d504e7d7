"""Plain, immutable result objects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .prompt import DocumentChunk

__all__ = ["DocumentChunk", "RankedDocument", "order_by_score"]


@dataclass(frozen=True, slots=True)
class RankedDocument:
    """One document of a ranking: where it was in the input, its score, and its text.

    In ``long_documents="chunk"`` mode, ``best_chunk`` is the chunk whose score is the document's (its token
    and character span), and ``chunks`` holds every chunk with its score when ``return_chunks=True``; both
    are None in truncate mode.
    """

    index: int
    score: float
    document: str
    best_chunk: DocumentChunk | None = None
    chunks: tuple[DocumentChunk, ...] | None = None


def order_by_score(
    documents: Iterable[str],
    scores: Iterable[float],
    *,
    top_n: int | None = None,
    threshold: float | None = None,
) -> tuple[RankedDocument, ...]:
    """Best first; equal scores keep input order; ``threshold`` keeps scores >= it; then ``top_n``."""
    ranked = [
        RankedDocument(index=i, score=s, document=d) for i, (d, s) in enumerate(zip(documents, scores, strict=True))
    ]
    # sorted() is stable, so ties stay in input order.
    ranked.sort(key=lambda r: -r.score)
    if threshold is not None:
        ranked = [r for r in ranked if r.score >= threshold]
    if top_n is not None:
        ranked = ranked[:top_n]
    return tuple(ranked)
