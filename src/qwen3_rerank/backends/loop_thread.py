"""A private event loop in a daemon thread, and calls into it from any thread or loop: the one such
module, shared by the vLLM backend (its ``AsyncLLM`` lives there) and the server backend (its pooled
``httpx.AsyncClient`` does).

``AsyncLLM`` binds its queues and its output-handler task to the loop it first runs on, and an
``httpx.AsyncClient`` its connections, so every call must run on that one loop. Sync callers block on
the result; async callers await it without blocking their own loop. Either way, a caller that gives
up (cancellation, Ctrl-C) asks the loop to cancel its work and then waits until that work has really
ended (requests aborted), so that when it returns nothing of its call is left in the engine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ..errors import EngineError

__all__ = ["LoopThread"]

T = TypeVar("T")

#: how long a caller that gave up waits for its cancelled work to finish aborting its requests
_CANCEL_WAIT_S = 60.0


class _LoopCall:
    """One coroutine run as a task on the private loop; ``future`` completes only once the task has ended.

    ``asyncio.run_coroutine_threadsafe`` is not enough: its future reports "cancelled" at once, while
    the task is still aborting its requests, and a coroutine cancelled before it starts never runs its
    cleanup. Here the outcome is set from the task's done-callback, after all cleanup.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], closed: str) -> None:
        self._loop = loop
        self._coro = coro
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            loop.call_soon_threadsafe(self._start)
        except RuntimeError:  # the loop was closed
            coro.close()
            raise EngineError(closed) from None

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


class LoopThread:
    """A private event loop in a daemon thread. It holds no reference to the engine or backend it serves,
    so a backend that is garbage-collected unclosed can still stop it (through ``weakref.finalize``)."""

    def __init__(self, name: str, closed_message: str = "This engine was shut down; create a new reranker.") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._closed_message = closed_message
        #: async closers [`shutdown()`][qwen3_rerank.backends.loop_thread.LoopThread.shutdown] awaits on the loop after
        #: cancelling what is in flight
        self.on_shutdown: list[Callable[[], Awaitable[Any]]] = []
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and block until it has ended; an interrupt cancels it first."""
        if threading.current_thread() is self.thread:
            coro.close()
            raise EngineError("LoopThread.run called from its own loop (it would deadlock)")
        call = _LoopCall(self.loop, coro, self._closed_message)
        try:
            return call.future.result()
        except BaseException:
            if not call.future.done():  # interrupted while waiting (Ctrl-C): stop the work, then re-raise
                call.cancel()
                with contextlib.suppress(BaseException):
                    call.future.result(timeout=_CANCEL_WAIT_S)
            raise

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on the private loop, from another loop, without blocking that loop."""
        call = _LoopCall(self.loop, coro, self._closed_message)
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

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel what is in flight (its callers get a CancelledError, not a hang), run the
        ``on_shutdown`` closers, stop the loop."""
        if self.loop.is_closed():
            return
        if threading.current_thread() is not self.thread:
            with contextlib.suppress(BaseException):
                _LoopCall(self.loop, self._cancel_all(), self._closed_message).future.result(timeout=timeout)
        self.stop(timeout)

    async def _cancel_all(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for close in self.on_shutdown:
            await close()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop thread (after what runs on it was shut down)."""
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=timeout)
            if not self.thread.is_alive():
                self.loop.close()
