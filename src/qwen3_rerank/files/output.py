"""Where scored rows go: a regular file (resumable), standard output (``-o -``, streamed), nothing else.

Only a regular file can be resumed from: ``/dev/full`` reads without end, ``/dev/null`` cannot be
synced, a FIFO blocks, a directory cannot be written. So those are refused up front, naming ``--output``.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import file_io
from ..errors import Qwen3RerankFileNotFoundError, Qwen3RerankValueError
from .rows import Block

__all__ = ["STDOUT_NAMES", "AppendWriter", "check_output", "clear_output", "is_stdout", "open_output"]

#: Output names that stream rows to standard output (no resume): ``-`` and the names of fd 1.
STDOUT_NAMES = ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def is_stdout(output: Path) -> bool:
    return str(output) in STDOUT_NAMES


def open_output(output: Path, mode: str) -> Any:
    try:
        return output.open(mode)
    except OSError as exc:
        raise Qwen3RerankValueError(f"cannot write the output (--output) {output}: {exc.strerror}") from None


def check_output(output: Path) -> None:
    """A regular file, or a new one in an existing folder; anything else is refused naming ``--output``."""
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


def clear_output(output: Path, *extra: Path | None) -> None:
    """Remove ``output``, what an interrupted atomic write left, and ``extra`` paths (parts, manifest)."""
    file_io.remove_temporaries(output)
    for stale in (output, *extra):
        if stale is None:
            continue
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()


class AppendWriter:
    """Appends each block in one write, synced before the next is scored (text formats)."""

    def __init__(
        self, output: Path, fresh: bool, *, header: bytes, encode: Callable[[Block, Sequence[float]], bytes]
    ) -> None:
        self.output, self.encode = output, encode
        self.streaming = is_stdout(output)
        if self.streaming:
            # sys.stdout at run time: the CLI points it at the real standard output while fd 1 is
            # lent to stderr for the engine's chatter.
            sys.stdout.flush()
            self.handle = sys.stdout.buffer
        else:
            self.handle = open_output(output, "wb" if fresh else "ab")
        if fresh and header:
            self._append(header)

    def _append(self, data: bytes) -> None:
        # One write per block, synced before the next block is scored: a crash loses at most the block
        # being written, and the torn end is cut off on the next run.
        self.handle.write(data)
        self.handle.flush()
        if not self.streaming:
            os.fsync(self.handle.fileno())

    def write(self, block: Block, scores: Sequence[float]) -> None:
        self._append(self.encode(block, scores))

    def finish(self) -> None:
        if not self.streaming:
            self.handle.close()
