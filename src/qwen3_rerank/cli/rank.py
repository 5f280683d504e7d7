"""``qwen3-rerank rank``: rank documents (a file or stdin; JSONL or one per line) for one query."""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from ..errors import Qwen3RerankFileNotFoundError, Qwen3RerankValueError
from ..results import RankedDocument

__all__ = ["add_parser", "read_documents", "read_input", "run", "split_lines"]

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
        "--input-format",
        choices=("auto", "jsonl", "lines"),
        default="auto",
        help="auto: JSONL when the first non-empty line (or half of them) is a JSON string or object, "
        "else one document per line",
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


def _json_document(line: str) -> Any:
    """The parsed line when it is a JSON string or object (what a JSONL document is), else None."""
    if not line.lstrip().startswith(("{", '"')):
        return None
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, str | dict) else None


def split_lines(text: str) -> list[str]:
    r"""Lines split at ``\n`` (a ``\r`` before it is dropped) and nowhere else: a lone ``\r``, form feed
    or Unicode line separator inside a line stays part of that document."""
    if text.startswith("\ufeff"):  # a UTF-8 byte-order mark, as some Windows editors write
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_documents(stream: IO[str] | str, input_format: str = "auto") -> list[str]:
    r"""Documents from JSON Lines or plain lines; empty lines are skipped in both.

    ``auto`` reads JSON Lines when the first non-empty line, or at least half of the non-empty lines, is
    a JSON string or object; then every non-empty line must be one, and a line that is not is an error
    naming its number. Otherwise each line is one plain-text document.

    A stream should be opened with ``newline="\n"`` (or be read as bytes and decoded), so that a lone
    ``\r`` is not taken for a line break.
    """
    text = stream if isinstance(stream, str) else stream.read()
    numbered = [(i + 1, line) for i, line in enumerate(split_lines(text)) if line.strip()]
    if input_format == "lines" or not numbered:
        return [line for _, line in numbered]
    parsed = [(line_no, _json_document(line)) for line_no, line in numbered]
    json_lines = sum(value is not None for _, value in parsed)
    if input_format == "auto" and parsed[0][1] is None and 2 * json_lines < len(parsed):
        return [line for _, line in numbered]
    why = (
        ""
        if input_format == "jsonl"
        else (
            f" (the input reads as JSON Lines: {json_lines} of its {len(parsed)} non-empty lines are JSON strings "
            "or objects)"
        )
    )
    documents = []
    for (line_no, value), (_, line) in zip(parsed, numbered, strict=True):
        if value is None:
            try:
                json.loads(line)
                what = "is JSON but neither a string nor an object"
            except json.JSONDecodeError as exc:
                what = f"is not valid JSON ({exc.msg} at column {exc.colno})"
            raise Qwen3RerankValueError(
                f"line {line_no} {what}{why}; fix that line, or pass --input-format lines to read every line "
                "as a plain-text document"
            )
        documents.append(_document_text(value, line_no))
    return documents


def _decode(data: bytes, name: str) -> str:
    """UTF-8 text, or an error that names the input and says how to convert it."""
    if data.startswith(b"\x1f\x8b"):
        raise Qwen3RerankValueError(
            f"{name} is gzip-compressed, not text: decompress it first, e.g. "
            "`zcat docs.jsonl.gz | qwen3-rerank rank QUERY`"
        )
    nul = data.find(b"\0", 0, 1 << 20)
    if nul >= 0:
        raise Qwen3RerankValueError(
            f"{name} holds binary data (a NUL byte at offset {nul}), not text. Pass a UTF-8 text or JSONL "
            "file, e.g. `qwen3-rerank rank QUERY < docs.txt`; for a PDF or office file, extract its text first"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Qwen3RerankValueError(
            f"{name} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}). Convert it first, "
            "e.g. `iconv -f latin1 -t utf-8 FILE | qwen3-rerank rank QUERY`"
        ) from None


def read_input(path: str) -> str:
    """The text of a documents file, or of stdin for ``-``, read as UTF-8 bytes (no newline translation)."""
    if path == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise Qwen3RerankValueError("no documents: pass --documents FILE or pipe them on stdin")
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:  # a text-only stdin (e.g. replaced by a test harness)
            return sys.stdin.read()
        return _decode(stream.read(), "stdin")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except IsADirectoryError:
        raise Qwen3RerankValueError(
            f"--documents {path!r} is a directory; pass a file of documents (JSONL or one per line), or "
            f"concatenate the directory's files: `cat {path.rstrip('/')}/*.txt | qwen3-rerank rank QUERY`"
        ) from None
    except FileNotFoundError:
        raise Qwen3RerankFileNotFoundError(f"--documents {path!r} does not exist") from None
    except OSError as exc:
        raise Qwen3RerankValueError(f"cannot read --documents {path!r}: {exc.strerror or exc}") from None
    return _decode(data, path)


def _write(results: tuple[RankedDocument, ...], fmt: str, out: IO[str]) -> None:
    rows: list[dict[str, Any]] = [
        {"rank": r + 1, "index": d.index, "score": d.score, "document": d.document} for r, d in enumerate(results)
    ]
    for row, result in zip(rows, results, strict=True):
        if result.best_chunk is not None:  # chunk mode: which chunk won, as spans of the document
            chunk = result.best_chunk
            row["chunk"] = {
                "index": chunk.index,
                "token_start": chunk.token_start,
                "token_end": chunk.token_end,
                "char_start": chunk.char_start,
                "char_end": chunk.char_end,
            }
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
    from ..validation import check_threshold, check_top_n, split_query
    from . import reranker_from_args
    from .chunking import long_document_modes

    # Everything that needs no model is checked first: a model takes seconds to load.
    long_document_modes(args)
    split_query(args.query, args.instruction, "the query")  # empty or whitespace only is refused, as in the API
    top_n = check_top_n(args.top_n, "--top-n", "omit it for all documents")
    threshold = check_threshold(args.threshold)
    documents = read_documents(read_input(args.documents), args.input_format)
    if not documents:
        raise Qwen3RerankValueError("no documents to rank: the input is empty")
    with reranker_from_args(args, show_progress=len(documents) > 4096) as reranker:
        results = reranker.rank(args.query, documents, top_n=top_n, threshold=threshold)
    _write(results, args.format, sys.stdout)
    return 0
