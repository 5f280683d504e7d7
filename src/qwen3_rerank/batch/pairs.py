"""Reading (query, document) pairs for a batch job and writing its scores, as Arrow tables."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import file_io
from ..errors import Qwen3RerankFileNotFoundError, Qwen3RerankValueError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ID_COLUMNS", "OPTIONAL_COLUMNS", "TEXT_COLUMNS", "file_format", "read_pairs", "write_atomically"]

ID_COLUMNS = ("query_id", "doc_id")
TEXT_COLUMNS = ("query", "document")
OPTIONAL_COLUMNS = ("instruction",)


def import_pyarrow() -> Any:
    return file_io.import_pyarrow("Batch jobs")


def file_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """``parquet``, ``jsonl`` or ``csv``: ``fmt`` when given, else from the file's suffix."""
    return file_io.detect_format(path, fmt)


def read_pairs(path: str | os.PathLike[str], fmt: str | None = None) -> pa.Table:
    """The pairs of a JSONL, CSV or Parquet file, checked: ``query_id, doc_id, query, document[, instruction]``.

    Ids may be strings or integers; each (query_id, doc_id) must appear once, since it names the pair in
    the output. Text must be non-null strings; a null instruction means the job's default.
    """
    pa = import_pyarrow()
    path = Path(path)
    fmt = file_format(path, fmt)
    if not path.is_file():
        raise Qwen3RerankFileNotFoundError(f"input file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise Qwen3RerankValueError(f"{path} holds no pairs")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif fmt == "csv":
            import pyarrow.csv as pcsv

            # Text columns stay strings (a document "42" is text); ids are inferred (strings or integers).
            table = pcsv.read_csv(
                path,
                convert_options=pcsv.ConvertOptions(
                    column_types={c: pa.string() for c in (*TEXT_COLUMNS, *OPTIONAL_COLUMNS)},
                    strings_can_be_null=False,
                ),
            )
        else:
            import pyarrow.json as pj

            # One block per 16 MiB keeps memory flat; text columns are forced to strings so a document
            # that looks like a number stays text.
            table = pj.read_json(
                path,
                read_options=pj.ReadOptions(block_size=16 << 20),
                parse_options=pj.ParseOptions(
                    explicit_schema=pa.schema([(c, pa.string()) for c in (*TEXT_COLUMNS, *OPTIONAL_COLUMNS)]),
                    unexpected_field_behavior="infer",
                ),
            )
    except (pa.ArrowInvalid, OSError) as exc:
        raise Qwen3RerankValueError(f"cannot read {fmt} pairs from {str(path)!r}: {exc}") from exc
    return check_pairs_table(table, str(path))


def check_pairs_table(table: pa.Table, source: str = "input") -> pa.Table:
    """The checked table, reduced to the known columns in a fixed order."""
    pa = import_pyarrow()
    import pyarrow.compute as pc

    missing = [c for c in (*ID_COLUMNS, *TEXT_COLUMNS) if c not in table.column_names]
    if missing:
        raise Qwen3RerankValueError(
            f"{source} lacks the column(s) {', '.join(missing)}; a batch job reads query_id, doc_id, query, "
            f"document and optionally instruction (it has {', '.join(table.column_names) or 'none'})"
        )
    if table.num_rows == 0:
        raise Qwen3RerankValueError(f"{source} holds no pairs")
    columns = [c for c in (*ID_COLUMNS, *TEXT_COLUMNS, *OPTIONAL_COLUMNS) if c in table.column_names]
    table = table.select(columns)
    for name in columns:
        column = table.column(name)
        nulls = column.null_count
        if name in ID_COLUMNS:
            if not (
                pa.types.is_string(column.type)
                or pa.types.is_large_string(column.type)
                or pa.types.is_integer(column.type)
            ):
                raise Qwen3RerankValueError(f"{source}: {name} must hold strings or integers, got {column.type}")
        elif not (
            pa.types.is_string(column.type)
            or pa.types.is_large_string(column.type)
            or (pa.types.is_null(column.type) and name == "instruction")
        ):
            raise Qwen3RerankValueError(f"{source}: {name} must hold strings, got {column.type}")
        if nulls and name != "instruction":
            row = pc.index(pc.is_null(column), True).as_py()
            raise Qwen3RerankValueError(
                f"{source}: row {row} has no {name}; every pair needs query_id, doc_id, query, document"
            )
    keys = table.group_by(list(ID_COLUMNS)).aggregate([([], "count_all")])
    repeated = keys.filter(pc.greater(keys.column("count_all"), 1))
    if repeated.num_rows:
        first = repeated.slice(0, 1).to_pylist()[0]
        raise Qwen3RerankValueError(
            f"{source}: {repeated.num_rows} (query_id, doc_id) pair(s) appear more than once, e.g. "
            f"({first['query_id']!r}, {first['doc_id']!r}); each pair must be listed once, since the ids name "
            "its score in the output"
        )
    return table


def write_atomically(table: pa.Table, path: str | os.PathLike[str], fmt: str) -> None:
    """Write ``table`` whole or not at all (see
    [`qwen3_rerank.file_io.atomic_write()`][qwen3_rerank.file_io.atomic_write])."""

    def write(temporary: Path) -> None:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, temporary)
            return
        if fmt == "csv":
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, temporary)
            return
        with open(temporary, "w", encoding="utf-8") as out:
            names = table.column_names
            # json.dumps writes the shortest repr that round-trips each float exactly.
            for row in zip(*(table.column(n).to_pylist() for n in names), strict=True):
                out.write(json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False) + "\n")

    file_io.atomic_write(path, write)
