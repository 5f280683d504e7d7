"""Deterministic shards and the work directory that makes a batch job restartable.

A shard is a run of consecutive input rows. Its id joins its position and a digest of its rows and of
the scoring settings, so a rerun on the same input finds the same ids, and a changed row gets a new id
(and is scored again) instead of reusing a stale score. Each finished shard is one Parquet file,
written whole or not at all; a rerun scores only the shards without a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Qwen3RerankValueError
from ..files.manifest import Manifest, check_same_settings

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["MANIFEST", "Shard", "WorkDir", "plan_shards"]

MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class Shard:
    id: str
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def _digest_column(hasher: Any, values: list[Any]) -> None:
    # Length-prefixed, so no text can imitate a boundary between two values.
    for value in values:
        text = "\x00" if value is None else f"{type(value).__name__}:{value}"
        hasher.update(f"{len(text)}:".encode())
        hasher.update(text.encode("utf-8", "surrogatepass"))


def plan_shards(table: pa.Table, shard_size: int, settings: Mapping[str, Any]) -> list[Shard]:
    """Shards of ``shard_size`` rows (the last may be shorter), ids fixed by position, content and settings."""
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size <= 0:
        raise Qwen3RerankValueError(f"shard_size must be a positive int, got {shard_size!r}")
    salt = json.dumps(dict(settings), sort_keys=True).encode()
    width = max(6, len(str((table.num_rows - 1) // shard_size)))
    shards = []
    for number, start in enumerate(range(0, table.num_rows, shard_size)):
        stop = min(start + shard_size, table.num_rows)
        hasher = hashlib.sha256(salt)
        for name in table.column_names:
            hasher.update(name.encode())
            _digest_column(hasher, table.column(name).slice(start, stop - start).to_pylist())
        shards.append(Shard(id=f"{number:0{width}d}-{hasher.hexdigest()[:16]}", start=start, stop=stop))
    return shards


class WorkDir:
    """Finished shards as ``part-<shard id>.parquet`` files, and the settings of the job they belong to."""

    def __init__(self, path: str | os.PathLike[str], settings: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.settings = dict(settings)
        manifest = Manifest(self.path / MANIFEST)
        recorded = manifest.read()
        if recorded is not None:
            check_same_settings(
                recorded,
                self.settings,
                f"{str(self.path)!r} holds shards of a job that",
                "Rerun with the same settings to resume it, or pass another work directory (or delete this one).",
            )
        else:
            manifest.write(self.settings)

    def part(self, shard: Shard) -> Path:
        return self.path / f"part-{shard.id}.parquet"

    def finished(self, shard: Shard) -> bool:
        return self.part(shard).is_file()
