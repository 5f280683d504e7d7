"""The file layer under the file-scoring engine (``qwen3_rerank.files``): formats by suffix, pyarrow on demand,
atomic writes.

- [`detect_format()`][qwen3_rerank.file_io.detect_format]: ``jsonl`` / ``csv`` / ``parquet`` from an explicit
  choice or the suffix.
- [`import_pyarrow()`][qwen3_rerank.file_io.import_pyarrow]: pyarrow, or a
  [`BackendNotInstalledError`][qwen3_rerank.BackendNotInstalledError] naming the extra.
- [`atomic_write()`][qwen3_rerank.file_io.atomic_write]: write a temporary file beside the target, fsync it, rename
  it into place, so a reader (or a rerun after a crash) sees the whole file or none.
  [`remove_temporaries()`][qwen3_rerank.file_io.remove_temporaries] clears what a crash left behind.

Both runners (local and Ray) write through the same plan: a Parquet output's finished parts wait in
``OUTPUT.parts/`` until they are joined into ``OUTPUT``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from .errors import BackendNotInstalledError, Qwen3RerankValueError

__all__ = [
    "FORMATS",
    "SUFFIX_FORMATS",
    "atomic_write",
    "atomic_write_text",
    "detect_format",
    "fsync_file",
    "import_pyarrow",
    "remove_temporaries",
    "truncate",
]

FORMATS = ("jsonl", "csv", "parquet")
SUFFIX_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def detect_format(path: str | os.PathLike[str], fmt: str | None = None, *, allowed: Collection[str] = FORMATS) -> str:
    """``fmt`` when given (checked against ``allowed``), else the format the file name's suffix says."""
    names = " or ".join(repr(f) for f in allowed)
    if fmt is not None:
        if fmt not in allowed:
            raise Qwen3RerankValueError(f"format must be {names}, got {fmt!r}")
        return fmt
    found = SUFFIX_FORMATS.get(Path(path).suffix.lower())
    if found not in allowed:
        suffixes = ", ".join(s for s, f in SUFFIX_FORMATS.items() if f in allowed)
        raise Qwen3RerankValueError(
            f"cannot tell the format of {str(path)!r} from its suffix; name it {suffixes}, or pass the format "
            "explicitly (--format)"
        )
    return str(found)


def import_pyarrow(purpose: str = "Parquet files") -> Any:
    """``pyarrow`` with its parquet module loaded, or an error that names the extra to install."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"{purpose} need pyarrow: pip install qwen3-rerank[ray] (batch jobs) or qwen3-rerank[eval] "
            "(both include it), or pip install pyarrow"
        ) from exc
    return pyarrow


def fsync_file(path: str | os.PathLike[str]) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary)``, fsync the file, rename it to ``path``; on failure nothing replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    try:
        write(temporary)
        fsync_file(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def remove_temporaries(path: str | os.PathLike[str]) -> None:
    """Delete the temporary files an interrupted [`atomic_write()`][qwen3_rerank.file_io.atomic_write] to ``path`` left
    behind."""
    path = Path(path)
    if path.parent.is_dir():
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)


def truncate(path: str | os.PathLike[str], size: int) -> None:
    """Cut ``path`` to ``size`` bytes (a torn last row), if it is longer."""
    if os.stat(path).st_size != size:
        with open(path, "r+b") as handle:
            handle.truncate(size)
