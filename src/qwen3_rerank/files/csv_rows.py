"""CSV rows: a header naming the columns, every value carried through verbatim, a ``score`` column added.

Read strictly: a quoted field that is never closed would otherwise swallow every later row.
"""

from __future__ import annotations

import collections
import csv
import io
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import file_io
from ..errors import Qwen3RerankValueError
from .output import AppendWriter
from .rows import Block, Columns, Writer, in_blocks, pair_from_row, row_label

__all__ = ["CsvFormat", "csv_records"]


def csv_records(handle: Any, path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each CSV record; malformed CSV raises, naming the line its record began on.

    Strict: an unterminated quoted field would otherwise swallow every later row into one document.
    """
    reader = csv.reader(handle, strict=True)
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            hint = " (a quoted field that is never closed)" if "end of data" in str(exc) else ""
            raise Qwen3RerankValueError(
                f"{path}: the CSV record that begins on line {line} is malformed: {exc}{hint}; fix the quoting "
                'there (a quote inside a field is written twice: "")'
            ) from None
        yield line, fields


class CsvFormat:
    name = "csv"

    def __init__(self, cols: Columns) -> None:
        self.cols = cols

    def check(self, path: Path) -> None:
        self.header(path)

    def parts_dir(self, output: Path) -> Path | None:
        return None

    def names(self, path: Path) -> list[str]:
        with self._open(path) as handle:
            first = next(csv_records(handle, path), None)
        return [] if first is None else first[1]

    def column(self, path: Path, block: Block, name: str) -> list[Any]:
        header = self.header(path)
        if name not in header:
            return [None] * len(block.rows)
        at = header.index(name)
        return [row[at] for row in block.rows]

    def _open(self, path: Path) -> Any:
        return path.open(encoding="utf-8-sig", newline="")  # a BOM (Excel's "CSV UTF-8") is not a column name

    def header(self, path: Path) -> list[str]:
        header = self.names(path)
        if not header:
            raise Qwen3RerankValueError(f"{path} is empty; a CSV input needs a header row naming its columns")
        self._check_header(path, header)
        return header

    def _check_header(self, path: Path, header: list[str]) -> None:
        for name in (self.cols.query, self.cols.document):
            if name not in header:
                raise Qwen3RerankValueError(
                    f"{path} has no {name!r} column (its columns: {header}); rename the column, or name yours "
                    "with --query-column / --document-column"
                )
        if self.cols.score in header:
            raise Qwen3RerankValueError(
                f"{path} already has a {self.cols.score!r} column; choose another one (--score-column)"
            )
        if len(set(header)) != len(header):
            raise Qwen3RerankValueError(f"{path} repeats a column name in its header: {header}")

    def count(self, path: Path) -> int:
        # Reads every record strictly, so malformed CSV is reported before a model is loaded.
        with self._open(path) as handle:
            return max(0, sum(1 for _ in csv_records(handle, path)) - 1)

    def read(self, path: Path, skip: int, block_size: int) -> tuple[tuple[Any, Any] | None, Iterator[Block]]:
        handle = self._open(path)
        records = csv_records(handle, path)
        header = next(records)[1]
        at = {name: header.index(name) for name in (self.cols.query, self.cols.document)}
        instruction_at = header.index(self.cols.instruction) if self.cols.instruction in header else None

        def fields(row: list[str], number: int, line: int) -> tuple[Any, Any, Any]:
            if len(row) != len(header):
                raise Qwen3RerankValueError(
                    f"{row_label(number, line)} has {len(row)} fields, the header {len(header)}"
                )
            instruction = row[instruction_at] if instruction_at is not None else None
            return row[at[self.cols.query]], row[at[self.cols.document]], instruction

        last_key = None
        if skip:
            skipped = collections.deque(itertools.islice(records, skip), maxlen=1)
            if skipped:
                last_key = fields(skipped[0][1], skip, skipped[0][0])[:2]

        def blocks() -> Iterator[Block]:
            with handle:
                numbered = (
                    (number, line, pair_from_row(*fields(row, number, line), number, self.cols, line), row)
                    for number, (line, row) in enumerate(records, start=skip + 1)
                )
                yield from in_blocks(numbered, block_size)

        return last_key, blocks()

    def resume(self, output: Path, input_path: Path) -> tuple[int, tuple[Any, Any] | None]:
        expected = [*self.header(input_path), self.cols.score]
        lines = ByteCountingLines(output)
        reader = csv.reader(lines, strict=True)
        good_end, rows, last = 0, -1, None
        try:
            for row in reader:
                if rows == -1 and row != expected:
                    raise Qwen3RerankValueError(
                        f"{output} has the columns {row}, not {expected}: it was not written from this input; "
                        "pass --overwrite to replace it, or choose another output"
                    )
                if not lines.ended_with_newline:
                    break  # a last row without its line end was cut short
                rows += 1
                good_end, last = lines.offset, row
        except csv.Error:
            if not lines.exhausted:
                raise Qwen3RerankValueError(f"{output} is not valid CSV; pass --overwrite to replace it") from None
        finally:
            lines.close()
        file_io.truncate(output, good_end)
        if rows <= 0 or last is None:
            return 0, None
        q, d = expected.index(self.cols.query), expected.index(self.cols.document)
        return rows, (last[q], last[d])

    def writer(self, output: Path, input_path: Path, fresh: bool) -> Writer:
        header = csv_bytes([[*self.header(input_path), self.cols.score]])
        return AppendWriter(output, fresh, header=header, encode=self._encode)

    def _encode(self, block: Block, scores: Sequence[float]) -> bytes:
        return csv_bytes([[*row, repr(score)] for row, score in zip(block.rows, scores, strict=True)])


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


class ByteCountingLines:
    """Lines of a UTF-8 file for csv.reader, remembering the byte offset reached."""

    def __init__(self, path: Path) -> None:
        self._handle = path.open("rb")
        self.offset = 0
        self.exhausted = False
        self.ended_with_newline = True

    def __iter__(self) -> ByteCountingLines:
        return self

    def __next__(self) -> str:
        raw = self._handle.readline()
        if not raw:
            self.exhausted = True
            raise StopIteration
        self.offset += len(raw)
        self.ended_with_newline = raw.endswith(b"\n")
        return raw.decode("utf-8")

    def close(self) -> None:
        self._handle.close()
