"""The packed backend's device thread: calls queue first come, first served; each round packs the head.

Every call (sync or async) becomes a [`Request`][qwen3_rerank.backends.packed_scheduler.Request] in one FIFO queue. One
thread owns the device and
loops: take requests from the head of the queue up to ``max_batch_tokens`` prompt ids (always at least
one; a request is never split or overtaken), lay out and launch their packs, then, while the device runs
them, take and launch the next round before collecting this one's scores. Host work (grouping, packing,
uploads) therefore overlaps the device, and concurrent callers share forwards.

Cancellation: a request whose future is cancelled before its round starts leaves the queue, and its
prompts are in no pack; once its round has started it runs to the end and its scores are dropped.
If a round fails (a pack too large for memory, say), each of its requests is scored alone, so only the
one that fails gets the error.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import EngineError

__all__ = ["Request", "Scheduler"]

Handle = TypeVar("Handle")


@dataclass(eq=False)
class Request:
    prompts: Sequence[Sequence[int]]
    tokens: int
    future: Future[list[float]] = field(default_factory=Future)


class Scheduler(Generic[Handle]):
    """FIFO rounds on one thread.

    Args:
        launch: starts the device work for a round's prompts (in order) and returns a handle; may not block.
        finish: waits for a handle and returns one score per prompt, in the order given to ``launch``.
        max_batch_tokens: prompt ids taken per round (the admission limit into the device).
    """

    def __init__(
        self,
        launch: Callable[[list[Sequence[int]]], Handle],
        finish: Callable[[Handle], list[float]],
        max_batch_tokens: int,
        name: str = "qwen3-rerank-packed",
    ) -> None:
        self._launch, self._finish = launch, finish
        self.max_batch_tokens = max_batch_tokens
        self._queue: deque[Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        #: rounds run and requests per round, for tests and the benchmark's notes
        self.rounds: list[int] = []
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # -- callers -----------------------------------------------------------------------------------------

    def submit(self, prompts: Sequence[Sequence[int]]) -> Request:
        request = Request(prompts, sum(len(p) for p in prompts))
        with self._cond:
            if self._closed:
                raise EngineError("the packed backend is closed; open a new Reranker")
            self._queue.append(request)
            self._cond.notify()
        return request

    @property
    def waiting(self) -> int:
        """Requests queued and not cancelled (not yet taken by a round)."""
        with self._cond:
            return sum(not r.future.cancelled() for r in self._queue)

    def close(self, timeout: float = 60.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- the device thread -------------------------------------------------------------------------------

    def _take(self, block: bool) -> list[Request]:
        with self._cond:
            while block and not self._queue and not self._closed:
                self._cond.wait()
            batch: list[Request] = []
            tokens = 0
            while self._queue:
                head = self._queue[0]
                if head.future.cancelled():
                    self._queue.popleft()
                    continue
                if batch and tokens + head.tokens > self.max_batch_tokens:
                    break
                self._queue.popleft()
                if head.future.set_running_or_notify_cancel():
                    batch.append(head)
                    tokens += head.tokens
            if self._closed and not batch:
                for request in self._queue:
                    if request.future.set_running_or_notify_cancel():
                        request.future.set_exception(EngineError("the packed backend was closed before this call ran"))
                self._queue.clear()
            return batch

    def _loop(self) -> None:
        in_flight: tuple[list[Request], Any] | None = None
        while True:
            batch = self._take(block=in_flight is None)
            launched = self._start(batch) if batch else None
            if in_flight is not None:
                self._collect(*in_flight)
            in_flight = launched
            if in_flight is None and not batch:
                with self._cond:
                    if self._closed and not self._queue:
                        return

    def _start(self, batch: list[Request]) -> tuple[list[Request], Any] | None:
        self.rounds.append(len(batch))
        try:
            return batch, self._launch([p for r in batch for p in r.prompts])
        except BaseException as exc:
            self._alone(batch, exc)
            return None

    def _collect(self, batch: list[Request], handle: Any) -> None:
        try:
            scores = self._finish(handle)
        except BaseException as exc:
            self._alone(batch, exc)
            return
        start = 0
        for request in batch:
            request.future.set_result(scores[start : start + len(request.prompts)])
            start += len(request.prompts)

    def _alone(self, batch: list[Request], exc: BaseException) -> None:
        """The combined round failed: score each request on its own so only the bad one fails."""
        if len(batch) == 1 or not isinstance(exc, Exception):
            for request in batch:
                request.future.set_exception(exc)
            return
        for request in batch:
            try:
                request.future.set_result(self._finish(self._launch(list(request.prompts))))
            except Exception as own:
                request.future.set_exception(own)
