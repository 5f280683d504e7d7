"""``qwen3-rerank eval``: rerank a first stage on a BEIR-format dataset and report metrics before and after."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, Any

from ..errors import Qwen3RerankValueError
from ..validation import check_count

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    from ..evaluation.metrics import DEFAULT_METRICS
    from . import add_model_arguments
    from .chunking import add_long_document_arguments

    parser = sub.add_parser(
        "eval",
        help="measure reranking on a BEIR-format dataset (NDCG@10, MRR@10, Recall@10/100 before and after)",
        description="Rerank the top-k first-stage documents of every judged query of a BEIR-format dataset "
        "(corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) and report ranx metrics before and after reranking. "
        "The first stage is a TREC run file (--run) or BM25 (bm25s) built on the spot.",
    )
    parser.add_argument("dataset", type=Path, help="BEIR dataset directory")
    parser.add_argument("--split", default="test", help="qrels split to evaluate (default: %(default)s)")
    parser.add_argument(
        "--run", dest="first_stage_run", type=Path, default=None, help="first-stage TREC run file (default: BM25)"
    )
    parser.add_argument("--bm25-depth", type=int, default=100, help="documents per query BM25 retrieves (default: 100)")
    parser.add_argument("--save-first-stage", type=Path, default=None, help="also write the BM25 run to this file")
    parser.add_argument("-k", "--top-k", type=int, default=100, help="first-stage documents reranked per query")
    parser.add_argument(
        "--task",
        default=None,
        help="task whose built-in instruction to use (default: the dataset directory name); --instruction wins",
    )
    parser.add_argument(
        "-o",
        "--output-run",
        type=Path,
        default=None,
        help="where to write the reranked TREC run (default: DATASET.SPLIT.reranked.trec in the current directory)",
    )
    parser.add_argument("--report", type=Path, default=None, help="write the full report (overall, per query) as JSON")
    parser.add_argument("--per-query", action="store_true", help="also print every query's metrics")
    parser.add_argument(
        "--metrics", default=",".join(DEFAULT_METRICS), help="comma-separated ranx metrics (default: %(default)s)"
    )
    parser.add_argument(
        "--keep-identical-ids",
        action="store_true",
        help="keep first-stage documents whose id equals the query id (BEIR drops them by default)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_arguments(parser)
    add_long_document_arguments(parser, several=True)
    # None means "not given", so the task table can choose; an explicit --instruction always wins.
    parser.set_defaults(run=run, instruction=None)
    for action in parser._actions:
        if action.dest == "instruction":
            action.help = "task instruction (default: the task's built-in one, else web search)"


def _print_table(report: Any, out: IO[str]) -> None:
    from ..evaluation.metrics import metric_label

    out.write(f"{'metric':<12} {'first stage':>12} {'reranked':>10} {'delta':>9}\n")
    for metric in report.metrics:
        before, after = report.before.overall[metric], report.after.overall[metric]
        out.write(f"{metric_label(metric):<12} {before:>12.4f} {after:>10.4f} {after - before:>+9.4f}\n")


def _print_comparison(reports: dict[str, Any], out: IO[str]) -> None:
    """One column per --long-documents mode, each with its delta over the first stage."""
    from ..evaluation.metrics import metric_label

    first = next(iter(reports.values()))
    out.write(f"{'metric':<12} {'first stage':>12}" + "".join(f" {m:>10} {'delta':>9}" for m in reports) + "\n")
    for metric in first.metrics:
        before = first.before.overall[metric]
        cells = "".join(
            f" {r.after.overall[metric]:>10.4f} {r.after.overall[metric] - before:>+9.4f}" for r in reports.values()
        )
        out.write(f"{metric_label(metric):<12} {before:>12.4f}{cells}\n")


def _print_per_query(report: Any, out: IO[str]) -> None:
    from ..evaluation.metrics import metric_label

    header = "  ".join(f"{metric_label(m) + ' before':>16} {metric_label(m) + ' after':>15}" for m in report.metrics)
    out.write(f"{'query':<16} {header}\n")
    for query_id, before in report.before.per_query.items():
        after = report.after.per_query[query_id]
        cells = "  ".join(f"{before[m]:>16.4f} {after[m]:>15.4f}" for m in report.metrics)
        out.write(f"{query_id:<16} {cells}\n")


def run(args: argparse.Namespace) -> int:
    from ..evaluation import bm25_run, evaluate_reranker, instruction_for, load_beir, read_trec_run, write_trec_run
    from ..evaluation.beir import qrels_path, read_qrels
    from . import reranker_from_args
    from .chunking import long_document_modes

    check_count(args.top_k, "--top-k", note="documents reranked per query")
    check_count(args.bm25_depth, "--bm25-depth", note="documents BM25 retrieves per query")
    if args.first_stage_run is not None and args.save_first_stage is not None:
        raise Qwen3RerankValueError(
            "--save-first-stage saves the BM25 run; with --run the first stage is already a file"
        )
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    modes = long_document_modes(args, several=True)
    log = sys.stderr

    if args.first_stage_run is not None:
        first_stage = read_trec_run(args.first_stage_run)
        judged = read_qrels(qrels_path(args.dataset, args.split))
        # Only the documents the reranker will see are kept in memory.
        needed = {doc_id for q in judged for doc_id, _ in first_stage.get(q, ())[: args.top_k]}
        dataset = load_beir(args.dataset, args.split, doc_ids=needed)
    else:
        dataset = load_beir(args.dataset, args.split)
        print(f"BM25 over {len(dataset.corpus)} documents, top {args.bm25_depth} per query ...", file=log)
        first_stage = bm25_run(dataset.corpus, dataset.queries, depth=args.bm25_depth)
        if args.save_first_stage is not None:
            write_trec_run(first_stage, args.save_first_stage, tag="bm25s")

    task = instruction_for(args.task or dataset.name)
    if args.instruction is None:
        args.instruction = task.instruction
        source = f"built-in, task {task.task!r}" if task.known else f"default: no built-in one for {task.task!r}"
    else:
        source = "--instruction"
    print(f"instruction ({source}): {args.instruction}", file=log)

    reports: dict[str, Any] = {}
    with reranker_from_args(args) as reranker:
        # Several --long-documents modes share one engine; each is a view with its own default.
        for mode in modes:
            report = evaluate_reranker(
                dataset,
                reranker.with_options(long_documents=mode),
                first_stage,
                top_k=args.top_k,
                metrics=metrics,
                ignore_identical_ids=not args.keep_identical_ids,
                show_progress=not args.no_progress,
            )
            reports[mode] = report

    output_run = args.output_run or Path(f"{dataset.name.replace('/', '-')}.{dataset.split}.reranked.trec")
    for name, report in reports.items():
        path = output_run if len(modes) == 1 else output_run.with_name(f"{output_run.stem}.{name}{output_run.suffix}")
        write_trec_run(report.reranked_run, path)
        print(
            f"{report.queries_evaluated} queries evaluated, {report.pairs_scored} pairs reranked (top {report.top_k}"
            f"{', long documents: ' + name if len(modes) > 1 or name != 'truncate' else ''}); reranked run: {path}",
            file=log,
        )
    if report.queries_without_relevant:
        print(f"{report.queries_without_relevant} judged queries have no relevant document and are left out", file=log)
    if report.queries_missing_from_run:
        print(f"warning: the first stage retrieved nothing for {report.queries_missing_from_run} queries", file=log)
    if args.report is not None:
        content = report.to_dict() if len(modes) == 1 else {name: r.to_dict() for name, r in reports.items()}
        args.report.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    if args.per_query:
        for name, r in reports.items():
            if len(modes) > 1:
                sys.stdout.write(f"long documents: {name}\n")
            _print_per_query(r, sys.stdout)
            sys.stdout.write("\n")
    if len(modes) == 1:
        _print_table(report, sys.stdout)
    else:
        _print_comparison(reports, sys.stdout)
    return 0
