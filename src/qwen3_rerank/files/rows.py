"""Rows of a pairs file as the scorer sees them: column names, checked pairs, blocks, and the written
[`RowFormat`][qwen3_rerank.files.rows.RowFormat] protocol every format (JSONL, CSV, Parquet) implements."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import Qwen3RerankError, Qwen3RerankValueError
from ..validation import check_text

__all__ = ["Block", "Columns", "RowFormat", "Writer", "in_blocks", "pair_from_row", "row_label"]

#: (query or (instruction, query), document): what ``Reranker.score_pairs`` takes.
Pair = tuple[Any, str]


@dataclass(frozen=True, slots=True)
class Columns:
    query: str = "query"
    document: str = "document"
    instruction: str = "instruction"
    score: str = "score"


def row_label(row: int, line: int | None = None) -> str:
    """``row 3 (line 4)``: how messages name a data row (1-based) and, for text formats, its first line."""
    return f"row {row}" if line is None else f"row {row} (line {line})"


def pair_from_row(
    query: Any, document: Any, instruction: Any, row: int, cols: Columns, line: int | None = None
) -> Pair:
    """The checked pair of one row; an empty or missing instruction means the reranker's."""
    label = row_label(row, line)
    for name, value in ((cols.query, query), (cols.document, document)):
        if not isinstance(value, str):
            raise Qwen3RerankValueError(
                f"{label}: column {name!r} must be a string, got "
                f"{'nothing (missing or null)' if value is None else type(value).__name__ + ' ' + repr(value)[:60]}"
            )
        # The Reranker would check it too, but name it "pairs[0] document" (its place in one block).
        check_text(value, f"{label}: column {name!r}")
    if instruction is None or instruction == "":
        return query, document
    if not isinstance(instruction, str):
        raise Qwen3RerankValueError(
            f"{label}: column {cols.instruction!r} must be a string or empty, got {instruction!r:.60}"
        )
    return (check_text(instruction, f"{label}: column {cols.instruction!r}"), query), document


@dataclass
class Block:
    """Consecutive rows read, scored and written together (a block of rows; "chunk" means a piece of a long
    document, see [`cut_documents`][qwen3_rerank.chunking.cut_documents])."""

    first_row: int  # 1-based number of the block's first data row
    pairs: list[Pair]
    rows: Any  # the format's own representation, written back with the scores
    lines: list[int] | None = None  # each row's first line in the input (text formats)

    def name_rows(self, exc: Qwen3RerankError) -> Qwen3RerankError:
        """``exc`` naming where it happened: the Reranker's ``pairs[i]`` (a place in this block) replaced by
        the row's number; an error about no one pair (a query too long, say) prefixed with the block's rows."""
        message = str(exc)
        found = re.match(r"pairs\[(\d+)\]", message)
        if found is not None and int(found.group(1)) < len(self.pairs):
            i = int(found.group(1))
            named = row_label(self.first_row + i, self.lines[i] if self.lines else None) + message[found.end() :]
        else:
            last = self.first_row + len(self.pairs) - 1
            where = f"row {last}" if last == self.first_row else f"rows {self.first_row}-{last}"
            named = f"{where}: {message}"
        try:
            return type(exc)(named)
        except TypeError:  # an error class with another signature keeps its own message
            return exc


def in_blocks(numbered: Iterator[tuple[int, int, Pair, Any]], block_size: int) -> Iterator[Block]:
    """(row number, line, pair, row) -> blocks of ``block_size`` rows (the last may be shorter)."""
    pairs: list[Pair] = []
    rows: list[Any] = []
    lines: list[int] = []
    first = 0
    for number, line, pair, row in numbered:
        if not rows:
            first = number
        pairs.append(pair)
        rows.append(row)
        lines.append(line)
        if len(rows) == block_size:
            yield Block(first, pairs, rows, lines)
            pairs, rows, lines = [], [], []
    if rows:
        yield Block(first, pairs, rows, lines)


class Writer(Protocol):
    """Appends scored blocks to an output, each whole or not at all."""

    def write(self, block: Block, scores: Sequence[float]) -> None: ...

    def finish(self) -> None:
        """Called once every row is written."""


class RowFormat(Protocol):
    """One file format of pairs. A resumable output only ever grows by whole blocks.

    A key is a row's (query, document): resuming checks that the output's last row has the key of the
    input's row at that position, so the output of another input is refused.
    """

    #: ``jsonl``, ``csv`` or ``parquet``
    name: str
    cols: Columns

    def check(self, path: Path) -> None:
        """Refuse an input whose columns cannot be scored (before any model loads)."""

    def count(self, path: Path) -> int:
        """Data rows in the input; malformed input raises here, before any model loads."""

    def read(self, path: Path, skip: int, block_size: int) -> tuple[tuple[Any, Any] | None, Iterator[Block]]:
        """(key of row ``skip``, or None when ``skip`` is 0; the blocks after row ``skip``)."""

    def resume(self, output: Path, input_path: Path) -> tuple[int, tuple[Any, Any] | None]:
        """(complete rows in ``output``, key of the last one); a torn last row is cut off first."""

    def writer(self, output: Path, input_path: Path, fresh: bool) -> Writer:
        """The writer of ``output`` (``fresh``: started over; else appended to)."""

    def parts_dir(self, output: Path) -> Path | None:
        """Where unfinished parts of ``output`` live (Parquet), or None when it is appended in place."""

    def names(self, path: Path) -> list[str]:
        """The column names of ``path`` (JSONL: the fields of its first row)."""

    def column(self, path: Path, block: Block, name: str) -> list[Any]:
        """The values of column ``name`` in ``block`` (read from ``path``); None where a row lacks it."""
