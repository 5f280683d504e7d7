"""First-come, first-served admission of prompts into a shared engine (``max_in_flight_prompts``).

Every group of prompts a call submits asks for as many slots as it has prompts. Groups are admitted
strictly in arrival order: a large group at the head is never overtaken by small ones behind it, so no
caller starves, and under load each caller waits for the work ahead of it, no more (back-pressure, never
an error). Without a limit every group is admitted at once and only counted.

Runs on the engine's event loop only, so it needs no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from ..errors import Qwen3RerankValueError
from ..validation import check_optional_count

__all__ = ["AdmissionGate", "validate_max_in_flight"]


def validate_max_in_flight(value: object) -> int | None:
    return check_optional_count(value, "engine_options max_in_flight_prompts", note="no limit")


class AdmissionGate:
    def __init__(self, limit: int | None) -> None:
        self.limit = validate_max_in_flight(limit)
        #: prompts admitted and not yet released (what this process has in the engine now)
        self.in_flight = 0
        #: the most prompts ever in flight at once
        self.peak = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        """Groups queued for admission now."""
        return sum(not future.done() for _, future in self._waiting)

    def group_size(self, n: int) -> int:
        """The largest group one call may submit at a time (a call bigger than the limit goes in turns)."""
        return n if self.limit is None else min(n, self.limit)

    async def acquire(self, n: int) -> None:
        if self.limit is not None and n > self.limit:
            raise Qwen3RerankValueError(f"a group of {n} prompts can never fit max_in_flight_prompts={self.limit}")
        if not self._waiting and self._fits(n):
            self._take(n)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, future)
        self._waiting.append(entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # admitted just as it was cancelled: give it back
                self.release(n)
            else:
                with contextlib.suppress(ValueError):  # _wake may have dropped it already
                    self._waiting.remove(entry)
                self._wake()  # the head may have been this one, blocking smaller groups behind it
            raise

    def release(self, n: int) -> None:
        self.in_flight -= n
        self._wake()

    def _fits(self, n: int) -> bool:
        return self.limit is None or self.in_flight + n <= self.limit

    def _take(self, n: int) -> None:
        self.in_flight += n
        self.peak = max(self.peak, self.in_flight)

    def _wake(self) -> None:
        while self._waiting and self._fits(self._waiting[0][0]):
            n, future = self._waiting.popleft()
            if future.done():  # cancelled while queued
                continue
            self._take(n)
            future.set_result(None)
