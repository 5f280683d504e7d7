"""The one progress bar: every long task (a large call, a file, an evaluation) reports through it.

One place decides how progress looks (tqdm, pairs/s and the time left, on stderr) and when it is off,
so the library, the file runners and the command line cannot drift into four different bars.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, TypeVar

__all__ = ["Progress", "batches", "progress"]

T = TypeVar("T")


class Progress(Protocol):
    """What a task sees: ``update(n)`` after each ``n`` items done."""

    def update(self, n: int) -> object: ...


class _Off:
    def update(self, n: int) -> None:
        pass


@contextmanager
def progress(total: int, *, enabled: bool, desc: str, unit: str = "pair", initial: int = 0) -> Iterator[Progress]:
    """A bar counting ``unit``s up to ``total`` (from ``initial``, a resumed task's done part); a no-op when off.

    The bar is closed however the task ends, so an error is never printed over a half-drawn bar.
    """
    if not enabled:
        yield _Off()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True, smoothing=0.05)
    try:
        yield bar
    finally:
        bar.close()


def batches(items: Sequence[T], size: int, *, enabled: bool, desc: str, unit: str = "pair") -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``; the bar counts a slice as done when the next one
    is asked for (or the iteration ends). The one slicing of a caller's items into backend calls."""
    with progress(len(items), enabled=enabled, desc=desc, unit=unit) as bar:
        for start in range(0, len(items), size):
            yield items[start : start + size]
            bar.update(min(size, len(items) - start))
