"""Parquet rows: the input's schema, types included, plus a ``float64`` score column.

Parquet cannot be appended to, so an output's blocks go to numbered part files in ``OUTPUT.parts/``
(each renamed into place once complete) that are joined into ``OUTPUT`` at the end.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import file_io
from ..errors import Qwen3RerankValueError
from .rows import Block, Columns, Writer, pair_from_row

__all__ = ["ParquetFormat"]


class ParquetFormat:
    name = "parquet"

    def __init__(self, cols: Columns, *, integer_values: bool = False) -> None:
        self.cols = cols
        self.pa = file_io.import_pyarrow()
        #: the added column's type: float64 for scores, int64 for ranks
        self.value_type = self.pa.int64() if integer_values else self.pa.float64()

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

    def read(self, path: Path, skip: int, block_size: int) -> tuple[tuple[Any, Any] | None, Iterator[Block]]:
        parquet = self._file(path)
        sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
        last_key = None
        if skip:
            group, offset = 0, skip - 1
            while offset >= sizes[group]:
                offset -= sizes[group]
                group += 1
            batches = parquet.iter_batches(
                batch_size=block_size, row_groups=[group], columns=[self.cols.query, self.cols.document]
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
            # Batches of exactly block_size rows from the resume point on, whatever the row groups.
            pending, held, held_rows = skip - start, [], 0
            for batch in parquet.iter_batches(batch_size=block_size, row_groups=groups):
                if pending:
                    dropped = min(pending, batch.num_rows)
                    batch, pending = batch.slice(dropped), pending - dropped
                held.append(batch)
                held_rows += batch.num_rows
                while held_rows >= block_size:
                    table = self.pa.Table.from_batches(held).combine_chunks()
                    yield table.slice(0, block_size).to_batches()[0]
                    held, held_rows = table.slice(block_size).to_batches(), held_rows - block_size
            if held_rows:
                yield self.pa.Table.from_batches(held).combine_chunks().to_batches()[0]

        def blocks() -> Iterator[Block]:
            if not groups:
                return
            row = skip
            for batch in exact_batches():
                instructions = self._column(batch, self.cols.instruction)
                pairs = [
                    pair_from_row(q, d, i, row + n + 1, self.cols)
                    for n, ((q, d), i) in enumerate(zip(self._keys(batch), instructions, strict=True))
                ]
                yield Block(row + 1, pairs, batch)
                row += batch.num_rows

        return last_key, blocks()

    def check(self, path: Path) -> None:
        self._file(path)

    def names(self, path: Path) -> list[str]:
        return list(self.pa.parquet.ParquetFile(path).schema_arrow.names)

    def column(self, path: Path, block: Block, name: str) -> list[Any]:
        return self._column(block.rows, name)

    def parts_dir(self, output: Path) -> Path:
        return output.with_name(output.name + ".parts")

    def resume(self, output: Path, input_path: Path) -> tuple[int, tuple[Any, Any] | None]:
        parts_dir = self.parts_dir(output)
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

    def writer(self, output: Path, input_path: Path, fresh: bool) -> Writer:
        return PartsWriter(self, output, self.parts_dir(output), self._file(input_path).schema_arrow, fresh)


class PartsWriter:
    def __init__(self, fmt: ParquetFormat, output: Path, parts_dir: Path, schema: Any, fresh: bool) -> None:
        self.fmt, self.pa, self.output, self.parts_dir = fmt, fmt.pa, output, parts_dir
        self.schema = schema.append(self.pa.field(fmt.cols.score, fmt.value_type))
        parts_dir.mkdir(parents=True, exist_ok=True)
        self.next_part = len(list(parts_dir.glob("part-*.parquet")))

    def write(self, block: Block, scores: Sequence[float]) -> None:
        table = self.pa.Table.from_batches([block.rows]).append_column(
            self.fmt.cols.score, self.pa.array(scores, type=self.fmt.value_type)
        )
        final = self.parts_dir / f"part-{self.next_part:08d}.parquet"
        file_io.atomic_write(final, lambda tmp: self.pa.parquet.write_table(table, tmp))
        self.next_part += 1

    def finish(self) -> None:
        def join(tmp: Path) -> None:
            with self.pa.parquet.ParquetWriter(tmp, self.schema) as joined:
                for part in sorted(self.parts_dir.glob("part-*.parquet")):
                    # Part by part, so joining needs no more memory than one block.
                    joined.write_table(self.pa.parquet.read_table(part, schema=self.schema))

        file_io.atomic_write(self.output, join)
        shutil.rmtree(self.parts_dir)
