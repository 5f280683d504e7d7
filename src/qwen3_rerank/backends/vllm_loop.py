"""The event-loop thread that vLLM's async engine lives on, and calls into it from any thread or loop.

``AsyncLLM`` binds its queues and its output-handler task to the loop it first runs on, so every
engine call must run on that one loop. Sync callers block on the result; async callers await it
without blocking their own loop. Either way, a caller that gives up (cancellation, Ctrl-C) asks the
loop to cancel its work and then waits until that work has really ended (requests aborted), so that
when it returns nothing of its call is left in the engine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from ..errors import EngineError

__all__ = ["EngineLoop"]

T = TypeVar("T")

#: how long a caller that gave up waits for its cancelled work to finish aborting its requests
_CANCEL_WAIT_S = 60.0


class _LoopCall:
    """One coroutine run as a task on the engine loop; ``future`` completes only once the task has ended.

    ``asyncio.run_coroutine_threadsafe`` is not enough: its future reports "cancelled" at once, while
    the task is still aborting its requests, and a coroutine cancelled before it starts never runs its
    cleanup. Here the outcome is set from the task's done-callback, after all cleanup.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> None:
        self._loop = loop
        self._coro = coro
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            loop.call_soon_threadsafe(self._start)
        except RuntimeError:  # the loop was closed
            coro.close()
            raise EngineError("This vLLM engine was shut down; create a new reranker.") from None

    def _start(self) -> None:
        if self._cancelled:
            self._coro.close()
            self._settle(exception=asyncio.CancelledError())
            return
        self._task = self._loop.create_task(self._coro)
        self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self._settle(exception=asyncio.CancelledError())
        elif task.exception() is not None:
            self._settle(exception=task.exception())
        else:
            self._settle(result=task.result())

    def _settle(self, *, result: Any = None, exception: BaseException | None = None) -> None:
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            if exception is not None:
                self.future.set_exception(exception)
            else:
                self.future.set_result(result)

    def cancel(self) -> None:
        """Ask the loop to cancel the work (from any thread); ``future`` completes when it has stopped."""
        with contextlib.suppress(RuntimeError):  # a closed loop has nothing left to cancel
            self._loop.call_soon_threadsafe(self._cancel_now)

    def _cancel_now(self) -> None:
        self._cancelled = True
        if self._task is not None:
            self._task.cancel()


class EngineLoop:
    """A private event loop in a daemon thread. It holds no reference to the engine or any backend."""

    def __init__(self, name: str = "qwen3-rerank-vllm") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and block until it has ended; an interrupt cancels it first."""
        if threading.current_thread() is self.thread:
            coro.close()
            raise EngineError("EngineLoop.run called from the engine loop itself (it would deadlock)")
        call = _LoopCall(self.loop, coro)
        try:
            return call.future.result()
        except BaseException:
            if not call.future.done():  # interrupted while waiting (Ctrl-C): stop the work, then re-raise
                call.cancel()
                with contextlib.suppress(BaseException):
                    call.future.result(timeout=_CANCEL_WAIT_S)
            raise

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on the engine loop, from another loop, without blocking that loop."""
        call = _LoopCall(self.loop, coro)
        outcome = asyncio.wrap_future(call.future)
        try:
            return await asyncio.shield(outcome)
        except asyncio.CancelledError:
            if not call.future.done():
                call.cancel()
                # Wait (at most an abort round-trip) so that, once this returns, the engine holds none of
                # this call's requests; a second cancellation stops the waiting, not the abort.
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(outcome), _CANCEL_WAIT_S)
            raise

    def stop(self) -> None:
        """Stop the loop thread (after the engine on it was shut down)."""
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=30)
            if not self.thread.is_alive():
                self.loop.close()
