"""``qwen3-rerank score``: score a JSONL/CSV/Parquet file of (query, document) pairs, streaming and resumable,
in this process or (``--on ray``) on Ray actors. ``qwen3-rerank batch`` is this command on Ray."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_file_arguments", "add_parser", "add_ray_arguments", "column_options", "plural", "run"]


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "score",
        help="score a file of (query, document) pairs (JSONL, CSV, Parquet); streaming and resumable",
        description="Read INPUT (columns query, document, optional instruction; any others are carried "
        "through), and write the same rows with a score column to OUTPUT, one block of rows at a time. "
        "Rerunning the same command resumes after the rows already in OUTPUT.",
    )
    parser.add_argument("input", type=Path, help="a .jsonl, .csv or .parquet file")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="the scored file (same format; rerunning resumes it), or - to stream JSONL/CSV rows to stdout",
    )
    parser.add_argument(
        "--on",
        choices=("local", "ray"),
        default="local",
        help="local: one engine in this process; ray: one engine per Ray actor (default: local)",
    )
    add_file_arguments(parser)
    add_ray_arguments(parser)
    parser.set_defaults(run=run)


def add_file_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the file-scoring plan, the model's and the long documents' (``score`` and ``batch``)."""
    from ..files import FORMATS
    from . import add_model_arguments
    from .chunking import add_long_document_arguments

    parser.add_argument("--format", choices=("auto", *FORMATS), default="auto", help="default: from the suffix")
    parser.add_argument("--chunk-size", type=int, default=4096, help="rows per read-score-write block (default: 4096)")
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


def column_options(args: argparse.Namespace) -> dict[str, str]:
    """The column keywords every file function takes (``plan_score_file``, ``add_ranks``), from the options."""
    return {
        "query_column": args.query_column,
        "document_column": args.document_column,
        "instruction_column": args.instruction_column,
        "score_column": args.score_column,
    }


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ray (--on ray)")
    group.add_argument("--actors", type=int, default=None, help="scoring actors (default: one per GPU, else 1)")
    group.add_argument("--gpus-per-actor", type=float, default=None, help="default: 1 for vllm/packed when GPUs exist")
    group.add_argument("--cpus-per-actor", type=float, default=1, help="default: %(default)s")
    group.add_argument("--ray-address", default=None, help="cluster to join, e.g. auto (default: a local Ray)")


def run(args: argparse.Namespace) -> int:
    from ..errors import Qwen3RerankValueError
    from ..files import plan_score_file
    from ..files.manifest import settings_record
    from . import settings_from_args
    from .chunking import long_document_modes

    long_document_modes(args)
    if args.on == "local":
        ray_only = {"--actors": args.actors, "--gpus-per-actor": args.gpus_per_actor, "--ray-address": args.ray_address}
        given = [flag for flag, value in ray_only.items() if value is not None]
        given += ["--cpus-per-actor"] if args.cpus_per_actor != 1 else []
        if given:
            raise Qwen3RerankValueError(f"{', '.join(given)} apply to --on ray (this run is --on local)")
    settings = settings_from_args(args)
    # Everything that needs no model is checked first: an engine takes a while to start.
    job = plan_score_file(
        args.input,
        args.output,
        file_format=args.format,
        chunk_size=args.chunk_size,
        **column_options(args),
        overwrite=args.overwrite,
        settings=settings_record(settings),
    )
    runner = _ray_runner(args, settings, job.streaming) if args.on == "ray" else None
    if job.finished:
        print(f"{job.output_path} already holds all {plural(job.rows_total, 'row')}; nothing to do", file=sys.stderr)
        return 0
    try:
        if runner is not None:
            result = job.run(runner, show_progress=not args.no_progress)
        else:
            from ..reranker import Reranker

            with Reranker.from_settings(settings) as reranker:
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
    actors = f" on {plural(runner.actors_started, 'Ray actor')}" if runner is not None else ""
    print(
        f"scored {plural(result.rows_scored, 'row')}{resumed}{actors} in {result.seconds:.1f} s "
        f"({rate:.1f} pairs/s): {where}",
        file=sys.stderr,
    )
    return 0


def _ray_runner(args: argparse.Namespace, settings: Any, streaming: bool) -> Any:
    from ..files import RayRunner

    return RayRunner(
        settings,
        actors=args.actors,
        gpus_per_actor=args.gpus_per_actor,
        cpus_per_actor=args.cpus_per_actor,
        ray_address=args.ray_address,
        # Ray prints the actors' output on the driver's stdout, which holds the rows when streaming.
        log_to_driver=not args.no_progress and not streaming,
    )


def plural(count: int, noun: str) -> str:
    """``1 row``, ``2 rows``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
