"""JSON Lines rows: one object per line, every field carried through, a ``score`` key added."""

from __future__ import annotations

import collections
import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import file_io
from ..errors import Qwen3RerankValueError
from .output import AppendWriter
from .rows import Block, Columns, Writer, in_blocks, pair_from_row

__all__ = ["JsonlFormat"]


class JsonlFormat:
    name = "jsonl"

    def __init__(self, cols: Columns) -> None:
        self.cols = cols

    def check(self, path: Path) -> None:
        """Each line is checked as it is read."""

    def parts_dir(self, output: Path) -> Path | None:
        return None

    def names(self, path: Path) -> list[str]:
        with path.open(encoding="utf-8-sig") as handle:
            for line_no, line in self._records(handle):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise Qwen3RerankValueError(f"line {line_no} is not valid JSON ({exc.msg})") from None
                return list(record) if isinstance(record, dict) else []
        return []

    def column(self, path: Path, block: Block, name: str) -> list[Any]:
        return [record.get(name) for record in block.rows]

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

    def read(self, path: Path, skip: int, block_size: int) -> tuple[tuple[Any, Any] | None, Iterator[Block]]:
        handle = path.open(encoding="utf-8-sig")  # a BOM (Windows, Excel exports) is not part of the data
        records = self._records(handle)
        last_key = None
        if skip:
            skipped = collections.deque(itertools.islice(records, skip), maxlen=1)
            if skipped:
                last_key = self.key(self._parse(*skipped[0]))

        def blocks() -> Iterator[Block]:
            with handle:

                def numbered() -> Iterator[tuple[int, int, tuple[Any, str], dict[str, Any]]]:
                    for row, (line_no, line) in enumerate(records, start=skip + 1):
                        record = self._parse(line_no, line)
                        key = self.key(record)
                        pair = pair_from_row(*key, record.get(self.cols.instruction), row, self.cols, line_no)
                        yield row, line_no, pair, record

                yield from in_blocks(numbered(), block_size)

        return last_key, blocks()

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

    def writer(self, output: Path, input_path: Path, fresh: bool) -> Writer:
        return AppendWriter(output, fresh, header=b"", encode=self._encode)

    def _encode(self, block: Block, scores: Sequence[float]) -> bytes:
        lines = [
            json.dumps({**record, self.cols.score: score}, ensure_ascii=False) + "\n"
            for record, score in zip(block.rows, scores, strict=True)
        ]
        return "".join(lines).encode("utf-8")
