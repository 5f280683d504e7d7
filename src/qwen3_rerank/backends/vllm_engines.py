"""Engine lifetime: one vLLM async engine per (model, options) per process, shared and restarted.

Engines are expensive (seconds to minutes to start, most of a GPU's memory), so every reranker that
asks for the same model and options shares one, released when the last of them closes. Each engine
lives on its own event-loop thread ([`LoopThread`][qwen3_rerank.backends.loop_thread.LoopThread]). An engine
whose process died (``AsyncLLM.errored``) is replaced by a fresh one with the same model and options on
the next call, for every reranker sharing it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import EngineError
from .loop_thread import LoopThread
from .vllm_admission import AdmissionGate

__all__ = ["SharedEngine", "acquire", "live_engine_count", "release"]

logger = logging.getLogger(__name__)

#: builds a started ``AsyncLLM`` from (model, vLLM engine options); called on the engine's loop
StartEngine = Callable[[str, Mapping[str, Any]], Any]


class SharedEngine:
    def __init__(
        self,
        key: tuple[str, str],
        model: str,
        options: Mapping[str, Any],
        start: StartEngine,
        max_in_flight_prompts: int | None,
    ) -> None:
        self.key = key
        self.model = model
        self.options = dict(options)
        self._start = start
        self.loop = LoopThread("qwen3-rerank-vllm", "This vLLM engine was shut down; create a new reranker.")
        self.gate = AdmissionGate(max_in_flight_prompts)
        self.users = 0
        self.restarts = 0
        self._restart_lock: asyncio.Lock | None = None
        try:
            self.engine: Any = self.loop.run(self._start_on_loop())
        except BaseException:
            self.loop.stop()
            raise
        self.max_model_len = int(self.engine.model_config.max_model_len)

    async def _start_on_loop(self) -> Any:
        # Built while the loop runs, as vLLM's own server does: the engine starts its output handler on
        # this loop at once and cannot miss an early failure message.
        return self._start(self.model, self.options)

    async def live_engine(self) -> Any:
        """The engine, replaced first if its process died (runs on the engine loop)."""
        engine = self.engine
        if engine is None:
            raise EngineError("This vLLM engine was shut down; create a new reranker.")
        if not engine.errored:
            return engine
        if self._restart_lock is None:
            self._restart_lock = asyncio.Lock()
        async with self._restart_lock:
            if self.engine is not engine:  # another caller restarted it while this one waited
                return self.engine
            logger.warning("qwen3-rerank: the vLLM engine for %r had died; restarting it", self.model)
            with contextlib.suppress(Exception):
                engine.shutdown()
            self.engine = None
            del engine
            gc.collect()
            # Blocks this loop for the start; every caller of this engine waits for it anyway.
            self.engine = self._start(self.model, self.options)
            self.restarts += 1
            return self.engine

    async def _shutdown_on_loop(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            with contextlib.suppress(Exception):
                engine.shutdown()
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run(self._shutdown_on_loop())
        self.loop.stop()


_ENGINES: dict[tuple[str, str], SharedEngine] = {}
_ENGINES_LOCK = threading.Lock()
_EXIT_HOOKED = False


def _shutdown_at_exit() -> None:
    """Shut down the engines nobody closed (adapters are rarely closed) while the interpreter can still do it.

    Left open, vLLM's own exit handlers kill the engine process under our loop thread, whose output
    handler then logs ``EngineDeadError`` tracebacks as ERROR on every normal exit.
    """
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for shared in engines:
        shared.shutdown()


def _hook_exit() -> None:
    # Registered after the first engine started, so after vLLM's own handlers: atexit runs last-in first.
    global _EXIT_HOOKED
    if not _EXIT_HOOKED:
        atexit.register(_shutdown_at_exit)
        _EXIT_HOOKED = True


def live_engine_count() -> int:
    """How many vLLM engines this process holds (for tests and diagnostics)."""
    with _ENGINES_LOCK:
        return len(_ENGINES)


def _engine_key(model: str, options: Mapping[str, Any]) -> tuple[str, str]:
    return (model, repr(sorted(options.items())))


def acquire(
    model: str, options: Mapping[str, Any], start: StartEngine, max_in_flight_prompts: int | None
) -> SharedEngine:
    key = _engine_key(model, {**options, "max_in_flight_prompts": max_in_flight_prompts})
    with _ENGINES_LOCK:
        shared = _ENGINES.get(key)
        if shared is None:
            shared = _ENGINES[key] = SharedEngine(key, model, options, start, max_in_flight_prompts)
            _hook_exit()
        shared.users += 1
        return shared


def release(shared: SharedEngine) -> None:
    with _ENGINES_LOCK:
        shared.users -= 1
        if shared.users > 0:
            return
        _ENGINES.pop(shared.key, None)
    shared.shutdown()
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
