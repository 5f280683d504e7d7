"""The file layer shared by score_file and batch: formats, atomic writes, clean-up. No engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen3_rerank import file_io
from qwen3_rerank.errors import Qwen3RerankValueError


def test_formats_from_suffix_or_choice() -> None:
    assert [file_io.detect_format(n) for n in ("a.JSONL", "b.ndjson", "c.json", "d.csv", "e.pq", "f.parquet")] == [
        "jsonl",
        "jsonl",
        "jsonl",
        "csv",
        "parquet",
        "parquet",
    ]
    assert file_io.detect_format("x.txt", "csv") == "csv"
    with pytest.raises(Qwen3RerankValueError, match=r"name it \.jsonl, \.ndjson, \.json, \.parquet, \.pq"):
        file_io.detect_format("scores.csv", allowed=("jsonl", "parquet"))
    with pytest.raises(Qwen3RerankValueError, match="format must be 'jsonl' or 'parquet', got 'csv'"):
        file_io.detect_format("scores.jsonl", "csv", allowed=("jsonl", "parquet"))


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")

    def fail(temporary: Path) -> None:
        temporary.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        file_io.atomic_write(target, fail)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    file_io.atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_temporaries_of_a_crash_are_removed_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / ".out.parquet.0123.tmp").write_text("torn")
    (tmp_path / ".other.parquet.0123.tmp").write_text("another file's")
    (tmp_path / "out.parquet").write_text("kept")
    file_io.remove_temporaries(tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.parquet.0123.tmp", "out.parquet"]


def test_truncate_cuts_a_torn_tail_only(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"row1\nrow2\nro")
    file_io.truncate(path, 10)
    assert path.read_bytes() == b"row1\nrow2\n"
    file_io.truncate(path, 10)
    assert path.read_bytes() == b"row1\nrow2\n"
