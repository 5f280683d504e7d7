"""The long-document options the scoring commands share: ``--long-documents chunk`` and the chunk sizes."""

from __future__ import annotations

import argparse
from typing import Any, cast

from ..chunking import LONG_DOCUMENT_MODES, LongDocuments
from ..errors import Qwen3RerankValueError

__all__ = ["add_long_document_arguments", "long_document_modes", "long_document_options"]


def add_long_document_arguments(parser: argparse.ArgumentParser, *, several: bool = False) -> None:
    group = parser.add_argument_group("long documents")
    modes = "truncate or chunk" + (", or both to compare them: truncate,chunk" if several else "")
    group.add_argument(
        "--long-documents",
        default="truncate",
        metavar="MODE",
        help=f"{modes}. truncate: cut a document that does not fit from its end (default); chunk: score it by "
        "chunks and keep the best chunk's score",
    )
    group.add_argument(
        "--chunk-tokens",
        type=int,
        default=None,
        help="tokens per chunk (default: all that fits beside the query under --max-length)",
    )
    group.add_argument("--chunk-overlap", type=int, default=0, help="tokens consecutive chunks share (default: 0)")
    group.add_argument(
        "--max-chunks",
        type=int,
        default=64,
        help="most chunks per document; more is an error (default: %(default)s; 0: no limit)",
    )


def long_document_modes(args: argparse.Namespace, *, several: bool = False) -> list[LongDocuments]:
    modes = [m.strip() for m in str(args.long_documents).split(",") if m.strip()]
    if not modes or any(m not in LONG_DOCUMENT_MODES for m in modes) or len(set(modes)) != len(modes):
        raise Qwen3RerankValueError(
            f"--long-documents takes truncate or chunk{' (or truncate,chunk)' if several else ''}, "
            f"got {args.long_documents!r}"
        )
    if len(modes) > 1 and not several:
        raise Qwen3RerankValueError(
            f"--long-documents takes one mode here (truncate or chunk), got {args.long_documents!r}"
        )
    return cast("list[LongDocuments]", modes)


def long_document_options(args: argparse.Namespace) -> dict[str, Any]:
    """Reranker keyword arguments from the parsed options (the first mode when several are given)."""
    if not hasattr(args, "long_documents"):
        return {}
    return {
        "long_documents": long_document_modes(args, several=True)[0],
        "chunk_tokens": args.chunk_tokens,
        "chunk_overlap": args.chunk_overlap,
        "max_chunks": args.max_chunks or None,
    }
