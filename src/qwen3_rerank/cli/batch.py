"""``qwen3-rerank batch``: ``qwen3-rerank score --on ray`` with the output a positional argument, and ``--rank``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    from .score import add_file_arguments, add_ray_arguments

    parser = sub.add_parser(
        "batch",
        help="score a file of (query, document) pairs on a Ray cluster (resumable): score --on ray",
        description="Read INPUT (JSONL, CSV or Parquet; columns query, document, optional instruction; any "
        "others are carried through), score it with one engine per Ray actor, and write the same rows with "
        "a score column (and with --rank, a rank within each query_id) to OUTPUT, in the input's format. "
        "Rerunning the same command resumes after the rows already in OUTPUT.",
    )
    parser.add_argument("input", type=Path, help="pairs file (.jsonl, .csv or .parquet)")
    parser.add_argument("output", type=Path, help="the scored file, in the input's format")
    parser.add_argument(
        "--rank", action="store_true", help="add rank (1 = best) within each --group-column value, once scored"
    )
    parser.add_argument("--group-column", default="query_id", help="what --rank ranks within (default: query_id)")
    parser.add_argument("--batch-size", type=int, default=4096, help="prompts per engine call (default: %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar (as --no-progress)")
    add_file_arguments(parser)
    # Before 0.x the rows of one step were a "shard": the old spelling still works.
    parser.add_argument("--shard-size", dest="chunk_size", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    add_ray_arguments(parser)
    parser.set_defaults(run=run, on="ray")


def run(args: argparse.Namespace) -> int:
    from ..errors import Qwen3RerankValueError
    from ..files import add_ranks, detect_format
    from ..files.job import row_format
    from ..files.output import is_stdout
    from ..files.rows import Columns
    from .score import column_options
    from .score import run as score

    args.no_progress = args.no_progress or args.quiet
    if args.rank:
        if is_stdout(args.output):
            raise Qwen3RerankValueError("--rank needs an output file (it ranks the finished output), not -")
        cols = Columns(*column_options(args).values())
        name = detect_format(args.input) if args.format == "auto" else args.format
        if args.input.is_file() and "rank" in row_format(name, cols).names(args.input):
            raise Qwen3RerankValueError(f"{args.input} already has a 'rank' column; --rank would add another")
    code = score(args)
    if code == 0 and args.rank:
        add_ranks(
            args.output,
            group_column=args.group_column,
            file_format=args.format,
            chunk_size=args.chunk_size,
            **column_options(args),
        )
        print(f"ranked within {args.group_column}: {args.output}", file=sys.stderr)
    return code
