"""``qwen3-rerank rank``: rank documents (a file or stdin; JSONL or one per line) for one query."""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from ..errors import Qwen3RerankValueError
from ..results import RankedDocument

_TEXT_FIELDS = ("text", "document", "content", "page_content")


def add_parser(sub: Any) -> None:
    from . import add_model_arguments
    from .chunking import add_long_document_arguments

    parser = sub.add_parser(
        "rank",
        help="rank documents for a query (the main job)",
        description="Rank documents for QUERY, best first. Documents come from --documents or stdin: "
        "JSON Lines (each line a string or an object with a 'text' field) or plain text, one per line.",
    )
    parser.add_argument("query", help="the query text")
    parser.add_argument("-d", "--documents", default="-", help="file of documents, '-' for stdin (default)")
    parser.add_argument(
        "--input-format", choices=("auto", "jsonl", "lines"), default="auto",
        help="auto: JSONL when every non-empty line parses as JSON, else one document per line",
    )
    parser.add_argument("-n", "--top-n", type=int, default=None, help="keep the best N")
    parser.add_argument("--threshold", type=float, default=None, help="keep scores >= this (0..1)")
    parser.add_argument("-f", "--format", choices=("table", "json", "jsonl"), default="table", help="output format")
    add_model_arguments(parser)
    add_long_document_arguments(parser)
    parser.set_defaults(run=run)


def _document_text(value: Any, line_no: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for name in _TEXT_FIELDS:
            if isinstance(value.get(name), str):
                return value[name]
    raise Qwen3RerankValueError(
        f"line {line_no}: a JSONL document must be a string or an object with one of the fields "
        f"{', '.join(_TEXT_FIELDS)}; use --input-format lines for plain text"
    )


def read_documents(stream: IO[str], input_format: str = "auto") -> list[str]:
    """Documents from JSON Lines or plain lines; empty lines are skipped in both."""
    lines = [line.rstrip("\n").rstrip("\r") for line in stream]
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if input_format in ("auto", "jsonl"):
        parsed: list[tuple[int, Any]] = []
        for line_no, line in numbered:
            try:
                parsed.append((line_no, json.loads(line)))
            except json.JSONDecodeError:
                if input_format == "jsonl":
                    raise Qwen3RerankValueError(f"line {line_no} is not valid JSON; use --input-format lines") from None
                break
        else:
            if input_format == "jsonl" or all(isinstance(v, str | dict) for _, v in parsed):
                return [_document_text(v, n) for n, v in parsed]
    return [line for _, line in numbered]


def _write(results: tuple[RankedDocument, ...], fmt: str, out: IO[str]) -> None:
    rows: list[dict[str, Any]] = [
        {"rank": r + 1, "index": d.index, "score": d.score, "document": d.document} for r, d in enumerate(results)
    ]
    for row, result in zip(rows, results, strict=True):
        if result.best_chunk is not None:  # chunk mode: which chunk won, as spans of the document
            chunk = result.best_chunk
            row["chunk"] = {"index": chunk.index, "token_start": chunk.token_start, "token_end": chunk.token_end,
                            "char_start": chunk.char_start, "char_end": chunk.char_end}
    if fmt == "json":
        json.dump(rows, out, ensure_ascii=False, indent=2)
        out.write("\n")
    elif fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        out.write(f"{'rank':>4}  {'score':>8}  {'index':>5}  document\n")
        for row in rows:
            text = " ".join(row["document"].split())
            text = text if len(text) <= 80 else text[:77] + "..."
            out.write(f"{row['rank']:>4}  {row['score']:>8.4f}  {row['index']:>5}  {text}\n")


def run(args: argparse.Namespace) -> int:
    from . import reranker_from_args
    from .chunking import long_document_modes

    long_document_modes(args)
    if args.documents == "-":
        if sys.stdin.isatty():
            raise Qwen3RerankValueError("no documents: pass --documents FILE or pipe them on stdin")
        documents = read_documents(sys.stdin, args.input_format)
    else:
        with open(args.documents, encoding="utf-8") as handle:
            documents = read_documents(handle, args.input_format)
    if not documents:
        raise Qwen3RerankValueError("no documents to rank: the input is empty")
    with reranker_from_args(args, show_progress=len(documents) > 4096) as reranker:
        results = reranker.rank(args.query, documents, top_n=args.top_n, threshold=args.threshold)
    _write(results, args.format, sys.stdout)
    return 0
