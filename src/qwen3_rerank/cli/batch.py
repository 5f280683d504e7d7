"""``qwen3-rerank batch``: score a JSONL, CSV or Parquet file of pairs on a Ray cluster, restartably."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    from . import add_model_arguments
    from .chunking import add_long_document_arguments

    parser = sub.add_parser(
        "batch",
        help="score a file of (query, document) pairs on a Ray cluster (restartable)",
        description="Read pairs (query_id, doc_id, query, document[, instruction]) from JSONL, CSV or Parquet, score "
        "them with one engine per Ray actor, and write query_id, doc_id, score (and rank) to OUTPUT. Finished "
        "shards are kept in a work directory: rerunning the same command after a crash scores only the rest.",
    )
    parser.add_argument("input", type=Path, help="pairs file (.jsonl, .csv or .parquet)")
    parser.add_argument("output", type=Path, help="scores file (.parquet, .jsonl or .csv)")
    parser.add_argument("--rank", action="store_true", help="add the rank (1 = best) within each query_id")
    parser.add_argument("--shard-size", type=int, default=10_000, help="pairs per shard (default: %(default)s)")
    parser.add_argument("--actors", type=int, default=None, help="scoring actors (default: one per GPU, else 1)")
    parser.add_argument("--gpus-per-actor", type=float, default=None, help="default: 1 for vllm when GPUs exist")
    parser.add_argument("--cpus-per-actor", type=float, default=1, help="default: %(default)s")
    parser.add_argument("--batch-size", type=int, default=4096, help="prompts per engine call (default: %(default)s)")
    parser.add_argument("--work-dir", type=Path, default=None, help="finished shards (default: OUTPUT.shards)")
    parser.add_argument("--ray-address", default=None, help="cluster to join, e.g. auto (default: local Ray)")
    parser.add_argument(
        "--input-format", choices=("jsonl", "csv", "parquet"), default=None, help="default: from suffix"
    )
    parser.add_argument(
        "--output-format", choices=("jsonl", "csv", "parquet"), default=None, help="default: from suffix"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_model_arguments(parser)
    add_long_document_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        summary = _run(args)
    except KeyboardInterrupt:
        print("qwen3-rerank: interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    print(summary, file=sys.stderr)
    return 0 if summary.complete else 1


def _run(args: argparse.Namespace) -> Any:
    from ..batch import run_batch_job
    from . import _engine_options
    from .chunking import long_document_options

    return run_batch_job(
        args.input,
        args.output,
        model=args.model,
        backend=args.backend,
        engine_options=_engine_options(args),
        instruction=args.instruction,
        max_length=args.max_length,
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        num_actors=args.actors,
        gpus_per_actor=args.gpus_per_actor,
        cpus_per_actor=args.cpus_per_actor,
        rank=args.rank,
        input_format=args.input_format,
        output_format=args.output_format,
        work_dir=args.work_dir,
        ray_address=args.ray_address,
        progress=not args.quiet,
        **long_document_options(args),
    )
