"""Score a file of (query, document) pairs: JSONL, CSV or Parquet in, the same rows plus a score out.

Streaming: rows are read, scored and written one chunk at a time, so memory stays bounded however large
the file. Resumable: the output only ever grows by whole chunks, each written in one write and synced
before the next is scored; a rerun counts the complete rows already in the output (dropping a torn
last row, if a crash left one), checks they belong to this input, and scores only the rest. Parquet
cannot be appended to, so its chunks go to numbered part files in ``OUTPUT.parts/`` (each renamed into
place once complete) that are joined into ``OUTPUT`` at the end.
"""

from __future__ import annotations

import collections
import csv
import io
import itertools
import json
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import file_io
from .errors import Qwen3RerankError, Qwen3RerankFileNotFoundError, Qwen3RerankValueError
from .file_io import FORMATS, SUFFIX_FORMATS
from .validation import check_text

if TYPE_CHECKING:
    from .reranker import Reranker

__all__ = ["FORMATS", "ScoreFileJob", "ScoreFileResult", "detect_format", "plan_score_file", "score_file"]


@dataclass(frozen=True, slots=True)
class Columns:
    query: str = "query"
    document: str = "document"
    instruction: str = "instruction"
    score: str = "score"


@dataclass(frozen=True, slots=True)
class ScoreFileResult:
    """What a [`score_file`][qwen3_rerank.score_file.score_file] call did."""

    output: Path
    format: str
    rows_total: int
    #: rows found complete in the output when the call started (resumed from there).
    rows_resumed: int
    #: rows scored by this call.
    rows_scored: int
    seconds: float


def detect_format(path: str | Path) -> str:
    """``jsonl``, ``csv`` or ``parquet`` from the file name's suffix."""
    return file_io.detect_format(path)


# -- rows -> pairs ----------------------------------------------------------------------------------


def row_label(row: int, line: int | None = None) -> str:
    """``row 3 (line 4)``: how messages name a data row (1-based) and, for text formats, its first line."""
    return f"row {row}" if line is None else f"row {row} (line {line})"


def _pair(
    query: Any, document: Any, instruction: Any, row: int, cols: Columns, line: int | None = None
) -> tuple[Any, str]:
    label = row_label(row, line)
    for name, value in ((cols.query, query), (cols.document, document)):
        if not isinstance(value, str):
            raise Qwen3RerankValueError(
                f"{label}: column {name!r} must be a string, got "
                f"{'nothing (missing or null)' if value is None else type(value).__name__ + ' ' + repr(value)[:60]}"
            )
        # The Reranker would check it too, but name it "pairs[0] document" (its place in one chunk).
        check_text(value, f"{label}: column {name!r}")
    if instruction is None or instruction == "":
        return query, document
    if not isinstance(instruction, str):
        raise Qwen3RerankValueError(
            f"{label}: column {cols.instruction!r} must be a string or empty, got {instruction!r:.60}"
        )
    return (check_text(instruction, f"{label}: column {cols.instruction!r}"), query), document


@dataclass
class _Chunk:
    first_row: int  # 1-based number of the chunk's first data row
    pairs: list[tuple[Any, str]]
    rows: Any  # the format's own representation, written back with the scores
    lines: list[int] | None = None  # each row's first line in the input (text formats)

    def name_rows(self, exc: Qwen3RerankError) -> Qwen3RerankError:
        """``exc`` with the Reranker's ``pairs[i]`` (a place in this chunk) replaced by the row's number."""
        message = str(exc)
        found = re.match(r"pairs\[(\d+)\]", message)
        if found is None or int(found.group(1)) >= len(self.pairs):
            return exc
        i = int(found.group(1))
        label = row_label(self.first_row + i, self.lines[i] if self.lines else None)
        try:
            return type(exc)(label + message[found.end() :])
        except TypeError:  # an error class with another signature keeps its own message
            return exc


def _in_chunks(numbered: Iterator[tuple[int, int, tuple[Any, str], Any]], chunk_size: int) -> Iterator[_Chunk]:
    """(row number, line, pair, row) -> chunks of ``chunk_size`` rows (the last may be shorter)."""
    pairs: list[tuple[Any, str]] = []
    rows: list[Any] = []
    lines: list[int] = []
    first = 0
    for number, line, pair, row in numbered:
        if not rows:
            first = number
        pairs.append(pair)
        rows.append(row)
        lines.append(line)
        if len(rows) == chunk_size:
            yield _Chunk(first, pairs, rows, lines)
            pairs, rows, lines = [], [], []
    if rows:
        yield _Chunk(first, pairs, rows, lines)


# -- JSON Lines ---------------------------------------------------------------------------------------


class _Jsonl:
    name = "jsonl"

    def __init__(self, cols: Columns) -> None:
        self.cols = cols

    def _records(self, handle: Any) -> Iterator[tuple[int, str]]:
        for line_no, line in enumerate(handle, 1):
            if line.strip():
                yield line_no, line

    def _parse(self, line_no: int, line: str) -> dict[str, Any]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise Qwen3RerankValueError(f"line {line_no} is not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise Qwen3RerankValueError(
                f"line {line_no}: each line must be a JSON object with 'query' and 'document' fields"
            )
        if self.cols.score in record:
            raise Qwen3RerankValueError(
                f"line {line_no} already has a {self.cols.score!r} field; choose another output column (--score-column)"
            )
        return record

    def count(self, path: Path) -> int:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())

    def key(self, record: dict[str, Any]) -> tuple[Any, Any]:
        return record.get(self.cols.query), record.get(self.cols.document)

    def read(self, path: Path, skip: int, chunk_size: int) -> tuple[tuple[Any, Any] | None, Iterator[_Chunk]]:
        handle = path.open(encoding="utf-8-sig")  # a BOM (Windows, Excel exports) is not part of the data
        records = self._records(handle)
        last_key = None
        if skip:
            skipped = collections.deque(itertools.islice(records, skip), maxlen=1)
            if skipped:
                last_key = self.key(self._parse(*skipped[0]))

        def chunks() -> Iterator[_Chunk]:
            with handle:

                def numbered() -> Iterator[tuple[int, int, tuple[Any, str], dict[str, Any]]]:
                    for row, (line_no, line) in enumerate(records, start=skip + 1):
                        record = self._parse(line_no, line)
                        key = self.key(record)
                        pair = _pair(*key, record.get(self.cols.instruction), row, self.cols, line_no)
                        yield row, line_no, pair, record

                yield from _in_chunks(numbered(), chunk_size)

        return last_key, chunks()

    def resume(self, output: Path, input_path: Path) -> tuple[int, tuple[Any, Any] | None]:
        """Complete rows in ``output`` and the key of the last one; a torn last line is cut off."""
        count, last, good_end = 0, None, 0
        with output.open("rb") as handle:
            offset = 0
            for raw in handle:
                offset += len(raw)
                if not raw.endswith(b"\n"):
                    break
                good_end = offset
                if raw.strip():
                    count += 1
                    last = raw
        file_io.truncate(output, good_end)
        if last is None:
            return 0, None
        try:
            record = json.loads(last)
        except json.JSONDecodeError:
            raise Qwen3RerankValueError(
                f"{output} is not JSON Lines written by qwen3-rerank score; pass --overwrite"
            ) from None
        if not isinstance(record, dict) or self.cols.score not in record:
            raise Qwen3RerankValueError(
                f"{output} has rows without a {self.cols.score!r} field; pass --overwrite to start over"
            )
        return count, self.key(record)

    def writer(self, output: Path, input_path: Path, fresh: bool) -> _Writer:
        return _AppendWriter(output, fresh, header=b"", encode=self._encode)

    def _encode(self, chunk: _Chunk, scores: Sequence[float]) -> bytes:
        lines = [
            json.dumps({**record, self.cols.score: score}, ensure_ascii=False) + "\n"
            for record, score in zip(chunk.rows, scores, strict=True)
        ]
        return "".join(lines).encode("utf-8")


# -- CSV ------------------------------------------------------------------------------------------------


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


class _Csv:
    name = "csv"

    def __init__(self, cols: Columns) -> None:
        self.cols = cols

    def _open(self, path: Path) -> Any:
        return path.open(encoding="utf-8-sig", newline="")  # a BOM (Excel's "CSV UTF-8") is not a column name

    def header(self, path: Path) -> list[str]:
        with self._open(path) as handle:
            first = next(csv_records(handle, path), None)
        header = None if first is None else first[1]
        if header is None:
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

    def read(self, path: Path, skip: int, chunk_size: int) -> tuple[tuple[Any, Any] | None, Iterator[_Chunk]]:
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

        def chunks() -> Iterator[_Chunk]:
            with handle:
                numbered = (
                    (number, line, _pair(*fields(row, number, line), number, self.cols, line), row)
                    for number, (line, row) in enumerate(records, start=skip + 1)
                )
                yield from _in_chunks(numbered, chunk_size)

        return last_key, chunks()

    def resume(self, output: Path, input_path: Path) -> tuple[int, tuple[Any, Any] | None]:
        expected = [*self.header(input_path), self.cols.score]
        lines = _ByteCountingLines(output)
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

    def writer(self, output: Path, input_path: Path, fresh: bool) -> _Writer:
        header = _csv_bytes([[*self.header(input_path), self.cols.score]])
        return _AppendWriter(output, fresh, header=header, encode=self._encode)

    def _encode(self, chunk: _Chunk, scores: Sequence[float]) -> bytes:
        return _csv_bytes([[*row, repr(score)] for row, score in zip(chunk.rows, scores, strict=True)])


def _csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


class _ByteCountingLines:
    """Lines of a UTF-8 file for csv.reader, remembering the byte offset reached."""

    def __init__(self, path: Path) -> None:
        self._handle = path.open("rb")
        self.offset = 0
        self.exhausted = False
        self.ended_with_newline = True

    def __iter__(self) -> _ByteCountingLines:
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


# -- Parquet ------------------------------------------------------------------------------------------


class _Parquet:
    name = "parquet"

    def __init__(self, cols: Columns) -> None:
        self.cols = cols
        self.pa = file_io.import_pyarrow()

    def _file(self, path: Path) -> Any:
        parquet = self.pa.parquet.ParquetFile(path)
        names = parquet.schema_arrow.names
        for name in (self.cols.query, self.cols.document):
            if name not in names:
                raise Qwen3RerankValueError(f"{path} has no {name!r} column (its columns: {names})")
        if self.cols.score in names:
            raise Qwen3RerankValueError(
                f"{path} already has a {self.cols.score!r} column; choose another one (--score-column)"
            )
        return parquet

    def count(self, path: Path) -> int:
        return int(self._file(path).metadata.num_rows)

    def _column(self, batch: Any, name: str) -> list[Any]:
        if name not in batch.schema.names:
            return [None] * batch.num_rows
        return batch.column(name).to_pylist()

    def _keys(self, batch: Any) -> list[tuple[Any, Any]]:
        return list(zip(self._column(batch, self.cols.query), self._column(batch, self.cols.document), strict=True))

    def read(self, path: Path, skip: int, chunk_size: int) -> tuple[tuple[Any, Any] | None, Iterator[_Chunk]]:
        parquet = self._file(path)
        sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
        last_key = None
        if skip:
            group, offset = 0, skip - 1
            while offset >= sizes[group]:
                offset -= sizes[group]
                group += 1
            batches = parquet.iter_batches(
                batch_size=chunk_size, row_groups=[group], columns=[self.cols.query, self.cols.document]
            )
            for batch in batches:
                if offset < batch.num_rows:
                    last_key = self._keys(batch.slice(offset, 1))[0]
                    break
                offset -= batch.num_rows
        # Row groups wholly before the resume point are never read.
        first_group, start = 0, 0
        while first_group < len(sizes) and start + sizes[first_group] <= skip:
            start += sizes[first_group]
            first_group += 1
        groups = list(range(first_group, len(sizes)))

        def exact_batches() -> Iterator[Any]:
            # Batches of exactly chunk_size rows from the resume point on, whatever the row groups.
            pending, held, held_rows = skip - start, [], 0
            for batch in parquet.iter_batches(batch_size=chunk_size, row_groups=groups):
                if pending:
                    dropped = min(pending, batch.num_rows)
                    batch, pending = batch.slice(dropped), pending - dropped
                held.append(batch)
                held_rows += batch.num_rows
                while held_rows >= chunk_size:
                    table = self.pa.Table.from_batches(held).combine_chunks()
                    yield table.slice(0, chunk_size).to_batches()[0]
                    held, held_rows = table.slice(chunk_size).to_batches(), held_rows - chunk_size
            if held_rows:
                yield self.pa.Table.from_batches(held).combine_chunks().to_batches()[0]

        def chunks() -> Iterator[_Chunk]:
            if not groups:
                return
            row = skip
            for batch in exact_batches():
                instructions = self._column(batch, self.cols.instruction)
                pairs = [
                    _pair(q, d, i, row + n + 1, self.cols)
                    for n, ((q, d), i) in enumerate(zip(self._keys(batch), instructions, strict=True))
                ]
                yield _Chunk(row + 1, pairs, batch)
                row += batch.num_rows

        return last_key, chunks()

    def _parts(self, output: Path) -> Path:
        return output.with_name(output.name + ".parts")

    def resume(self, output: Path, input_path: Path) -> tuple[int, tuple[Any, Any] | None]:
        parts_dir = self._parts(output)
        if output.exists():
            if parts_dir.exists():  # the join finished; only the clean-up did not
                shutil.rmtree(parts_dir)
            parquet = self.pa.parquet.ParquetFile(output)
            rows = parquet.metadata.num_rows
            if rows != self.count(input_path):
                raise Qwen3RerankValueError(
                    f"{output} is a finished Parquet file with {rows} rows, but the input has "
                    f"{self.count(input_path)}; Parquet cannot be appended to: pass --overwrite"
                )
            return rows, None
        if not parts_dir.exists():
            return 0, None
        file_io.remove_temporaries(output)  # a join that was interrupted
        for tmp in parts_dir.glob("*.tmp"):
            tmp.unlink()  # a part that was being written when the last run stopped
        parts = sorted(parts_dir.glob("part-*.parquet"))
        rows = sum(self.pa.parquet.ParquetFile(p).metadata.num_rows for p in parts)
        if not parts or rows == 0:
            return 0, None
        last = self.pa.parquet.read_table(parts[-1], columns=[self.cols.query, self.cols.document])
        row = last.slice(last.num_rows - 1, 1).to_pylist()[0]
        return rows, (row[self.cols.query], row[self.cols.document])

    def writer(self, output: Path, input_path: Path, fresh: bool) -> _Writer:
        return _PartsWriter(self, output, self._parts(output), self._file(input_path).schema_arrow, fresh)


# -- writers ------------------------------------------------------------------------------------------


class _Writer:
    def write(self, chunk: _Chunk, scores: Sequence[float]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self) -> None:
        """Called once every row is written."""


class _AppendWriter(_Writer):
    def __init__(self, output: Path, fresh: bool, *, header: bytes, encode: Any) -> None:
        self.output, self.encode = output, encode
        self.streaming = is_stdout(output)
        if self.streaming:
            # sys.stdout at run time: the CLI points it at the real standard output while fd 1 is
            # lent to stderr for the engine's chatter.
            self.handle = sys.stdout.buffer
            sys.stdout.flush()
        else:
            self.handle = _open_output(output, "wb" if fresh else "ab")
        if fresh and header:
            self._append(header)

    def _append(self, data: bytes) -> None:
        # One write per chunk, synced before the next chunk is scored: a crash loses at most the chunk
        # being written, and the torn end is cut off on the next run.
        self.handle.write(data)
        self.handle.flush()
        if not self.streaming:
            os.fsync(self.handle.fileno())

    def write(self, chunk: _Chunk, scores: Sequence[float]) -> None:
        self._append(self.encode(chunk, scores))

    def finish(self) -> None:
        if not self.streaming:
            self.handle.close()


class _PartsWriter(_Writer):
    def __init__(self, fmt: _Parquet, output: Path, parts_dir: Path, schema: Any, fresh: bool) -> None:
        self.fmt, self.pa, self.output, self.parts_dir = fmt, fmt.pa, output, parts_dir
        self.schema = schema.append(self.pa.field(fmt.cols.score, self.pa.float64()))
        parts_dir.mkdir(parents=True, exist_ok=True)
        self.next_part = len(list(parts_dir.glob("part-*.parquet")))

    def write(self, chunk: _Chunk, scores: Sequence[float]) -> None:
        table = self.pa.Table.from_batches([chunk.rows]).append_column(
            self.fmt.cols.score, self.pa.array(scores, type=self.pa.float64())
        )
        final = self.parts_dir / f"part-{self.next_part:08d}.parquet"
        file_io.atomic_write(final, lambda tmp: self.pa.parquet.write_table(table, tmp))
        self.next_part += 1

    def finish(self) -> None:
        def join(tmp: Path) -> None:
            with self.pa.parquet.ParquetWriter(tmp, self.schema) as joined:
                for part in sorted(self.parts_dir.glob("part-*.parquet")):
                    # Part by part, so joining needs no more memory than one chunk.
                    joined.write_table(self.pa.parquet.read_table(part, schema=self.schema))

        file_io.atomic_write(self.output, join)
        shutil.rmtree(self.parts_dir)


# -- the output -----------------------------------------------------------------------------------------

#: Output names that stream rows to standard output (no resume): ``-`` and the names of fd 1.
STDOUT_NAMES = ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def is_stdout(output: Path) -> bool:
    return str(output) in STDOUT_NAMES


def _open_output(output: Path, mode: str) -> Any:
    try:
        return output.open(mode)
    except OSError as exc:
        raise Qwen3RerankValueError(f"cannot write the output (--output) {output}: {exc.strerror}") from None


def check_output(output: Path) -> None:
    """Only a regular file (or a new one in an existing folder) can be resumed from; say so naming --output.

    Anything else would break resuming: /dev/full reads without end, /dev/null cannot be synced, a FIFO
    would block, a directory cannot be written.
    """
    try:
        mode = output.stat().st_mode
    except FileNotFoundError:
        if not output.parent.is_dir():
            raise Qwen3RerankFileNotFoundError(
                f"the output (--output) {output} is in a folder that does not exist: create {output.parent} first"
            ) from None
        return
    except OSError as exc:
        raise Qwen3RerankValueError(f"cannot use the output (--output) {output}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise Qwen3RerankValueError(
            f"the output (--output) {output} is {kind}; name a file (rerunning resumes it), or pass -o - "
            "to stream the rows to standard output"
        )


# -- the job ------------------------------------------------------------------------------------------


def _clear(output: Path) -> None:
    file_io.remove_temporaries(output)
    for stale in (output, output.with_name(output.name + ".parts")):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()


class ScoreFileJob:
    """A checked, resumable scoring job, made by [`plan_score_file`][qwen3_rerank.score_file.plan_score_file].

    Planning does everything that needs no model (formats, columns, counting, repairing and checking a
    partial output), so a command can report bad input, or that nothing is left to do, before it
    starts an engine.
    """

    def __init__(
        self, fmt: Any, input_path: Path, output_path: Path, total: int, done: int, chunks: Iterator[_Chunk]
    ) -> None:
        self._fmt, self._chunks = fmt, chunks
        self.input_path, self.output_path = input_path, output_path
        #: rows in the input
        self.rows_total = total
        #: complete rows already in the output (the job resumes after them)
        self.rows_done = done

    @property
    def format(self) -> str:
        return str(self._fmt.name)

    @property
    def streaming(self) -> bool:
        """True when rows go to standard output (``-o -``): nothing to resume from."""
        return is_stdout(self.output_path)

    @property
    def finished(self) -> bool:
        """True when the output already holds every row."""
        return not self.streaming and self.rows_done == self.rows_total and self.output_path.exists()

    def run(self, reranker: Reranker, *, show_progress: bool = False) -> ScoreFileResult:
        """Score the remaining rows, one chunk at a time. A job runs once."""
        started = time.perf_counter()
        if self.finished:
            return ScoreFileResult(self.output_path, self.format, self.rows_total, self.rows_done, 0, 0.0)
        chunks, self._chunks = self._chunks, iter(())
        writer = self._fmt.writer(self.output_path, self.input_path, fresh=self.rows_done == 0)
        scored = 0
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=self.rows_total,
                initial=self.rows_done,
                unit="pair",
                desc="scoring",
                dynamic_ncols=True,
                smoothing=0.05,
            )
        try:
            for chunk in chunks:
                try:
                    scores = reranker.score_pairs(chunk.pairs)
                except Qwen3RerankError as exc:
                    named = chunk.name_rows(exc)
                    if named is exc:
                        raise
                    raise named from exc
                writer.write(chunk, scores)
                scored += len(scores)
                if bar is not None:
                    bar.update(len(scores))
            writer.finish()
        finally:
            if bar is not None:
                bar.close()
        return ScoreFileResult(
            self.output_path, self.format, self.rows_total, self.rows_done, scored, time.perf_counter() - started
        )


def plan_score_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    file_format: str = "auto",
    chunk_size: int = 4096,
    query_column: str = "query",
    document_column: str = "document",
    instruction_column: str = "instruction",
    score_column: str = "score",
    overwrite: bool = False,
) -> ScoreFileJob:
    """Check the input and any partial output, and return the job that scores the remaining rows.

    The arguments are those of [`score_file`][qwen3_rerank.score_file.score_file]. A torn last row of a
    partial output is cut off here.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    streaming = is_stdout(output_path)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise Qwen3RerankValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if not input_path.is_file():
        raise Qwen3RerankFileNotFoundError(f"{input_path} does not exist (or is not a file)")
    if not streaming:
        check_output(output_path)
        if output_path.exists() and output_path.resolve() == input_path.resolve():
            raise Qwen3RerankValueError("the output (--output) must be another file than the input")
    name = detect_format(input_path) if file_format == "auto" else file_format
    if name not in FORMATS:
        raise Qwen3RerankValueError(f"file_format must be 'auto' or one of {FORMATS}, got {file_format!r}")
    if streaming and name == "parquet":
        raise Qwen3RerankValueError(
            "Parquet cannot be streamed to standard output (its footer is written last); name an output file "
            "(--output scores.parquet)"
        )
    if file_format == "auto" and output_path.suffix.lower() in SUFFIX_FORMATS and detect_format(output_path) != name:
        raise Qwen3RerankValueError(
            f"the output {output_path} must have the input's format ({name}); converting between formats is "
            "not supported"
        )
    cols = Columns(query_column, document_column, instruction_column, score_column)
    fmt: Any = {"jsonl": _Jsonl, "csv": _Csv, "parquet": _Parquet}[name](cols)
    if name == "csv":
        fmt.header(input_path)

    total = fmt.count(input_path)
    if overwrite and not streaming:
        _clear(output_path)
    started = not streaming and (output_path.exists() or output_path.with_name(output_path.name + ".parts").exists())
    done, done_key = fmt.resume(output_path, input_path) if started else (0, None)
    if done > total:
        raise Qwen3RerankValueError(
            f"{output_path} already holds {done} rows, more than the {total} of {input_path}: it is not this "
            "input's output; pass --overwrite to replace it"
        )
    input_key, chunks = fmt.read(input_path, done, chunk_size)
    if done_key is not None and done_key != input_key:
        raise Qwen3RerankValueError(
            f"row {done} of {output_path} is not row {done} of {input_path} (different query or document): the "
            "output belongs to another input; pass --overwrite to replace it, or choose another output"
        )
    return ScoreFileJob(fmt, input_path, output_path, total, done, chunks)


def score_file(
    reranker: Reranker,
    input_path: str | Path,
    output_path: str | Path,
    *,
    file_format: str = "auto",
    chunk_size: int = 4096,
    query_column: str = "query",
    document_column: str = "document",
    instruction_column: str = "instruction",
    score_column: str = "score",
    overwrite: bool = False,
    show_progress: bool = False,
) -> ScoreFileResult:
    """Score every (query, document) row of ``input_path`` into ``output_path``, resuming a partial output.

    Args:
        reranker: any [`Reranker`][qwen3_rerank.Reranker]; rows without an instruction get its instruction.
        input_path: a ``.jsonl``, ``.csv`` or ``.parquet`` file with ``query`` and ``document`` columns and
            optionally ``instruction``; every other column is carried through unchanged.
        output_path: the same format; each input row with a ``score`` column added, in input order. A
            regular file (resumed from); ``"-"`` (or ``/dev/stdout``) streams JSONL/CSV rows to
            ``sys.stdout`` instead, with nothing to resume; any other non-regular file is refused.
        file_format: ``"auto"`` (from the input's suffix), ``"jsonl"``, ``"csv"`` or ``"parquet"``.
        chunk_size: rows read, scored and written at a time (memory, and work lost to a crash, per chunk).
        query_column: the query column's name; ``document_column``, ``instruction_column`` likewise.
        score_column: the name of the added column; the input must not have one already.
        overwrite: start over instead of resuming from the rows already in ``output_path``.
        show_progress: a tqdm bar with pairs/s and the time left.
    """
    job = plan_score_file(
        input_path,
        output_path,
        file_format=file_format,
        chunk_size=chunk_size,
        query_column=query_column,
        document_column=document_column,
        instruction_column=instruction_column,
        score_column=score_column,
        overwrite=overwrite,
    )
    return job.run(reranker, show_progress=show_progress)
