"""``qwen3-rerank score``: score a JSONL/CSV/Parquet file of (query, document) pairs, streaming and resumable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "plural", "run"]


def add_parser(sub: Any) -> None:
    from ..files import FORMATS
    from . import add_model_arguments
    from .chunking import add_long_document_arguments

    parser = sub.add_parser(
        "score",
        help="score a file of (query, document) pairs (JSONL, CSV, Parquet); streaming and resumable",
        description="Read INPUT (columns query, document, optional instruction; any others are carried "
        "through), and write the same rows with a score column to OUTPUT, one chunk at a time. Rerunning "
        "the same command resumes after the rows already in OUTPUT.",
    )
    parser.add_argument("input", type=Path, help="a .jsonl, .csv or .parquet file")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="the scored file (same format; rerunning resumes it), or - to stream JSONL/CSV rows to stdout",
    )
    parser.add_argument("--format", choices=("auto", *FORMATS), default="auto", help="default: from the suffix")
    parser.add_argument("--chunk-size", type=int, default=4096, help="rows per read-score-write step (default: 4096)")
    parser.add_argument("--query-column", default="query")
    parser.add_argument("--document-column", default="document")
    parser.add_argument(
        "--instruction-column", default="instruction", help="per-row instruction; empty means --instruction"
    )
    parser.add_argument("--score-column", default="score")
    parser.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_arguments(parser)
    add_long_document_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..chunking import ChunkOptions
    from ..files import plan_score_file, run_settings
    from . import _engine_options, reranker_from_args
    from .chunking import long_document_modes, long_document_options

    long_document_modes(args)
    settings = run_settings(
        model=args.model,
        backend=args.backend,
        dtype=_engine_options(args).get("dtype"),
        instruction=args.instruction,
        max_length=args.max_length,
        chunking=ChunkOptions.create(**long_document_options(args)),
    )
    # Everything that needs no model is checked first: an engine takes a while to start.
    job = plan_score_file(
        args.input,
        args.output,
        file_format=args.format,
        chunk_size=args.chunk_size,
        query_column=args.query_column,
        document_column=args.document_column,
        instruction_column=args.instruction_column,
        score_column=args.score_column,
        overwrite=args.overwrite,
        settings=settings,
    )
    if job.finished:
        print(f"{job.output_path} already holds all {plural(job.rows_total, 'row')}; nothing to do", file=sys.stderr)
        return 0
    try:
        with reranker_from_args(args) as reranker:
            result = job.run(reranker, show_progress=not args.no_progress)
    except KeyboardInterrupt:
        if job.streaming:
            print("qwen3-rerank: interrupted (rows streamed to stdout cannot be resumed)", file=sys.stderr)
        else:
            print("qwen3-rerank: interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    rate = result.rows_scored / result.seconds if result.seconds > 0 else 0.0
    resumed = f" (resumed after {result.rows_resumed})" if result.rows_resumed else ""
    where = "standard output" if job.streaming else result.output
    print(
        f"scored {plural(result.rows_scored, 'row')}{resumed} in {result.seconds:.1f} s ({rate:.1f} pairs/s): {where}",
        file=sys.stderr,
    )
    return 0


def plural(count: int, noun: str) -> str:
    """``1 row``, ``2 rows``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
