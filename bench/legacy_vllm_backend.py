"""BENCH ONLY: the vLLM backend as it was before issue 11 (git 773ecba), for the "before" column.

The synchronous ``vllm.LLM`` behind one lock per engine: concurrent calls queue one after another.
Kept verbatim except for absolute imports and a private engine registry; not part of the package.

The original docstring follows.

The default backend: vLLM in-process, pooling runner, prompts passed as token ids.

vLLM loads the causal LM as ``Qwen3ForSequenceClassification`` and folds the LM-head rows "yes" and
"no" into one classifier row (w_yes - w_no), so ``LLM.classify`` returns sigmoid(z_yes - z_no) directly:
the model's own score, without computing 151k logits per prompt.

Engines are expensive (seconds to minutes to start, most of a GPU's memory), so there is one engine
per (model, options) per process, shared by every reranker that asks for the same one and released
when the last of them closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import importlib.metadata
import logging
import multiprocessing.connection
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from qwen3_rerank.backends.base import ThreadedAsyncMixin
from qwen3_rerank.errors import BackendNotInstalledError, EngineError, ModelNotFoundError, NotAQwen3RerankerError

__all__ = ["HF_OVERRIDES", "VLLMBackend", "default_engine_options", "live_engine_count"]

logger = logging.getLogger(__name__)

HF_OVERRIDES: dict[str, Any] = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}


def _is_cpu_build() -> bool:
    try:
        importlib.metadata.distribution("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def default_engine_options(max_length: int) -> dict[str, Any]:
    """Engine options tuned for scoring (one forward pass per prompt, no decoding).

    Prompts never exceed ``max_length``, so the context is capped there (less KV memory to reserve);
    large token and sequence budgets let the scheduler pack many short prompts into one step; prefix
    caching reuses the instruction+query prefix that every document of a query shares.
    """
    options: dict[str, Any] = {
        "max_model_len": max_length,
        "enable_prefix_caching": True,
        "max_num_seqs": 512,
        "max_num_batched_tokens": max(65536, max_length),
        # Overlaps the scheduler's CPU work with the GPU's step (vLLM turns it off for pooling models);
        # measured on an H100, 0.6B bulk scoring: +19 % tokens/s (docs/benchmarks.md).
        "async_scheduling": True,
    }
    if _is_cpu_build():
        # On CPU a large step only costs memory; vLLM's CPU defaults are already sensible.
        options.pop("max_num_seqs")
        options.pop("async_scheduling")
        options["max_num_batched_tokens"] = max(8192, max_length)
    return options


@dataclass
class _SharedEngine:
    key: tuple[str, str]
    llm: Any
    max_model_len: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


_ENGINES: dict[tuple[str, str], _SharedEngine] = {}
_ENGINES_LOCK = threading.Lock()


def live_engine_count() -> int:
    """How many vLLM engines this process holds (for tests and diagnostics)."""
    with _ENGINES_LOCK:
        return len(_ENGINES)


def _engine_key(model: str, options: Mapping[str, Any]) -> tuple[str, str]:
    return (model, repr(sorted(options.items())))


def _drop_chat_template_warning(record: logging.LogRecord) -> bool:
    return "chat-template" not in record.getMessage()


def _start_engine(model: str, options: Mapping[str, Any]) -> Any:
    if _is_cpu_build():
        # Without this vLLM CPU reserves ~16 GB of KV cache up front, far more than scoring needs.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
    try:
        from vllm import LLM
    except ImportError as exc:
        raise BackendNotInstalledError(
            "The vLLM backend needs vLLM: pip install qwen3-rerank[gpu] (CUDA) or qwen3-rerank[cpu], "
            "or use backend='transformers'."
        ) from exc
    if not os.path.isdir(model) and os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            raise ModelNotFoundError(
                f"Model {model!r} is not a local directory and HF_HUB_OFFLINE=1 forbids downloading it. "
                "Pass the path of a local Qwen3-Reranker directory, or unset HF_HUB_OFFLINE."
            )
    # vLLM warns that an original Qwen3 reranker runs "without a --chat-template": that is about its own
    # text scoring API. We send complete prompts as token ids, so the warning would only mislead.
    logging.getLogger("vllm.entrypoints.pooling.scoring.io_processor").addFilter(_drop_chat_template_warning)
    try:
        return LLM(model=model, runner="pooling", hf_overrides=dict(HF_OVERRIDES), **options)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: the engine process failed to start
        message = str(exc)
        if "architecture" in message.lower() or "qwen3" in message.lower():
            raise NotAQwen3RerankerError(
                f"vLLM cannot load {model!r} as a Qwen3-Reranker: {message.splitlines()[0]}"
            ) from exc
        raise EngineError(
            f"vLLM could not start on {model!r}: {message.splitlines()[0] if message else type(exc).__name__}"
        ) from exc


def _acquire(model: str, options: Mapping[str, Any]) -> _SharedEngine:
    key = _engine_key(model, options)
    with _ENGINES_LOCK:
        shared = _ENGINES.get(key)
        if shared is None:
            llm = _start_engine(model, options)
            max_model_len = int(llm.llm_engine.model_config.max_model_len)
            shared = _ENGINES[key] = _SharedEngine(key=key, llm=llm, max_model_len=max_model_len)
        shared.users += 1
        return shared


def _release(shared: _SharedEngine) -> None:
    with _ENGINES_LOCK:
        shared.users -= 1
        if shared.users > 0:
            return
        _ENGINES.pop(shared.key, None)
    with shared.lock:
        llm, shared.llm = shared.llm, None
        with contextlib.suppress(Exception):
            llm.llm_engine.engine_core.shutdown()
        del llm
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def _model_type(model: str) -> str | None:
    config = os.path.join(model, "config.json")
    if not os.path.isfile(config):
        return None
    import json

    with open(config, encoding="utf-8") as handle:
        return json.load(handle).get("model_type")


class VLLMBackend(ThreadedAsyncMixin):
    name = "vllm"

    def __init__(self, model: str, *, max_length: int, engine_options: Mapping[str, Any] | None = None) -> None:
        model_type = _model_type(model)
        if model_type is not None and model_type != "qwen3":
            raise NotAQwen3RerankerError(
                f"{model!r} is a {model_type!r} model, not a Qwen3 causal LM; "
                "use a Qwen/Qwen3-Reranker-0.6B/4B/8B checkpoint."
            )
        options = {**default_engine_options(max_length), **dict(engine_options or {})}
        if "hf_overrides" in options or "runner" in options:
            raise ValueError("engine_options may not set hf_overrides or runner: qwen3-rerank sets them")
        if int(options["max_model_len"]) < max_length:
            raise ValueError(
                f"engine_options max_model_len={options['max_model_len']} is below max_length={max_length}: "
                "prompts of max_length tokens would not fit. Lower max_length or raise max_model_len."
            )
        self.engine_options: dict[str, Any] = options
        self._shared: _SharedEngine | None = _acquire(model, options)
        self.max_prompt_tokens: int | None = self._shared.max_model_len
        #: after an out-of-memory error, the batch size its split came down to (later calls start there)
        self._oom_cap: int | None = None

    @property
    def llm(self) -> Any:
        """The underlying ``vllm.LLM`` (shared; do not close it yourself)."""
        if self._shared is None:
            raise EngineError("This reranker is closed; create a new one.")
        return self._shared.llm

    # -- scoring ------------------------------------------------------------------------------------
    #
    # Failure handling, all under the shared engine's lock:
    # - cancellation (async): a thread cannot be stopped, so ``asyncio.to_thread`` alone would leave the
    #   engine scoring a batch nobody waits for, holding the lock. Instead the worker watches a flag: while
    #   waiting for the lock, and after every engine step through the progress hook ``LLM.classify`` calls
    #   (``_CancelWatch``). Raising there makes vLLM abort the requests it added; the cancelled coroutine
    #   waits for that (at most one engine step), so when it returns the engine holds none of its requests.
    # - an interrupt (Ctrl-C) or any other escape from ``classify`` can leave requests in the engine, and
    #   ``classify`` would hand their results to the next caller; they are aborted first (``_discard_unfinished``).
    # - out of memory: the batch is split in halves and retried down to single prompts; later calls of this
    #   backend start from the smallest size the split reached, instead of running out of memory again.
    # - the engine process dies: one EngineError; the next call restarts the engine (same model and
    #   options) for every reranker sharing it, so the object stays usable.

    def score_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        return self._score(prompts, None)

    async def ascore_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        if not prompts:
            return []
        cancel = threading.Event()
        worker = asyncio.ensure_future(asyncio.to_thread(self._score, prompts, cancel))
        try:
            return await asyncio.shield(worker)
        except asyncio.CancelledError:
            cancel.set()
            with contextlib.suppress(BaseException):
                await worker
            raise

    def _score(self, prompts: Sequence[Sequence[int]], cancel: threading.Event | None) -> list[float]:
        if not prompts:
            return []
        from vllm.inputs import TokensPrompt

        shared = self._shared
        if shared is None:
            raise EngineError("This reranker is closed; create a new one.")
        # Identical prompts are scored once: vLLM's float32 result moves by up to ~1e-6 with batch
        # composition, chunked prefill and prefix-cache hits, so two copies scored apart could differ
        # and be ordered by that noise.
        slot_of: dict[tuple[int, ...], int] = {}
        slots = [slot_of.setdefault(tuple(p), len(slot_of)) for p in prompts]
        requests: list[Any] = [None] * len(slot_of)
        for prompt, slot in zip(prompts, slots, strict=True):
            if requests[slot] is None:
                requests[slot] = TokensPrompt(prompt_token_ids=list(prompt))
        _lock_unless_cancelled(shared.lock, cancel)
        try:
            llm = self._live_llm(shared)
            _discard_unfinished(llm)
            try:
                scores: list[float] = []
                step = self._oom_cap or len(requests)
                for start in range(0, len(requests), step):
                    scores += self._classify_splitting(llm, requests[start : start + step], cancel)
            except BaseException:
                _discard_unfinished(llm)
                raise
        finally:
            shared.lock.release()
        if len(scores) != len(requests):
            raise EngineError(f"vLLM returned {len(scores)} results for {len(requests)} prompts")
        return [scores[slot] for slot in slots]

    def _live_llm(self, shared: _SharedEngine) -> Any:
        """The shared engine, restarted first if its process died (the caller holds ``shared.lock``)."""
        llm = shared.llm
        if llm is None:
            raise EngineError("The vLLM engine was shut down; create a new reranker.")
        if not _engine_is_dead(llm):
            _watch_for_engine_death(llm)
            return llm
        logger.warning("qwen3-rerank: the vLLM engine for %r had died; restarting it", shared.key[0])
        with contextlib.suppress(Exception):
            llm.llm_engine.engine_core.shutdown()
        new = _start_engine(shared.key[0], self.engine_options)
        shared.llm = new
        del llm
        gc.collect()
        _watch_for_engine_death(new)
        return new

    def _classify_splitting(self, llm: Any, requests: list[Any], cancel: threading.Event | None) -> list[float]:
        try:
            return _classify(llm, requests, cancel)
        except _Cancelled:
            raise asyncio.CancelledError from None
        except EngineError:
            raise
        except Exception as exc:
            if _engine_is_dead(llm) or _is_engine_dead_error(exc):
                raise EngineError(
                    f"The vLLM engine process died while scoring {len(requests)} prompts ({type(exc).__name__}: "
                    f"{_first_line(exc)}); none of them was scored. The engine restarts on the next call; if it "
                    "keeps dying, its log above says why (often out of memory: lower max_length, batch_size or "
                    "engine_options max_num_batched_tokens)."
                ) from exc
            if not _is_out_of_memory(exc):
                raise EngineError(
                    f"vLLM failed to score {len(requests)} prompts: {type(exc).__name__}: {_first_line(exc)}"
                ) from exc
            if len(requests) == 1:
                raise EngineError(
                    f"Out of memory scoring a single prompt of {len(requests[0]['prompt_token_ids'])} tokens. "
                    "Lower max_length, or give vLLM more memory (engine_options gpu_memory_utilization, a smaller "
                    "max_num_batched_tokens)."
                ) from exc
            _discard_unfinished(llm)
            half = (len(requests) + 1) // 2
            self._oom_cap = min(self._oom_cap or half, half)
            logger.warning(
                "qwen3-rerank: out of memory scoring %d prompts; retrying in batches of %d", len(requests), half
            )
            return self._classify_splitting(llm, requests[:half], cancel) + self._classify_splitting(
                llm, requests[half:], cancel
            )

    def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            _release(shared)


class _Cancelled(Exception):
    """Raised inside ``LLM.classify`` (an Exception, so vLLM aborts the requests it added)."""


class _CancelWatch(tqdm):
    """A silent progress bar for ``LLM.classify(use_tqdm=...)``: vLLM updates it after each engine step,
    which is the moment to stop scoring a batch whose caller has gone."""

    def __init__(self, *args: Any, cancel: threading.Event, **kwargs: Any) -> None:
        self._cancel = cancel
        super().__init__(*args, **{**kwargs, "disable": True})

    def update(self, n: float | None = 1) -> bool | None:
        if self._cancel.is_set():
            raise _Cancelled
        return super().update(n)


def _lock_unless_cancelled(lock: threading.Lock, cancel: threading.Event | None) -> None:
    if cancel is None:
        lock.acquire()
        return
    while not lock.acquire(timeout=0.05):
        if cancel.is_set():
            raise asyncio.CancelledError
    if cancel.is_set():
        lock.release()
        raise asyncio.CancelledError


def _classify(llm: Any, requests: list[Any], cancel: threading.Event | None) -> list[float]:
    progress: Any = False if cancel is None else functools.partial(_CancelWatch, cancel=cancel)
    outputs = llm.classify(requests, use_tqdm=progress)
    if len(outputs) != len(requests):
        raise EngineError(f"vLLM returned {len(outputs)} results for {len(requests)} prompts")
    return [float(out.outputs.probs[0]) for out in outputs]


def _discard_unfinished(llm: Any) -> None:
    """Abort requests an interrupted call left in the engine, so they never reach another caller.

    The caller holds the engine's lock, so every unfinished request is a leftover. vLLM has no public
    "abort all"; the output processor's table of live requests gives their ids, and draining them is
    the fallback if that ever moves.
    """
    with contextlib.suppress(Exception):
        engine = llm.llm_engine
        if not engine.get_num_unfinished_requests():
            return
        states = getattr(getattr(engine, "output_processor", None), "request_states", None)
        if isinstance(states, dict) and states:
            engine.abort_request(list(states), internal=True)
        if engine.get_num_unfinished_requests():
            llm.wait_for_completion(use_tqdm=False)


_WATCHED: weakref.WeakSet[Any] = weakref.WeakSet()
_WATCHED_LOCK = threading.Lock()


def _watch_for_engine_death(llm: Any) -> None:
    """Wake a caller blocked on an engine whose process died.

    vLLM's synchronous client notices the death (its monitor marks the engine dead and shuts the output
    thread down) but queues nothing for a caller already waiting in ``LLM.classify``: that caller would
    wait forever, holding the engine lock. One idle thread per engine waits for the engine processes to
    exit and then queues the EngineDeadError that vLLM raises in every other case.
    """
    with _WATCHED_LOCK:
        if llm in _WATCHED:
            return
        _WATCHED.add(llm)
    try:
        from vllm.v1.engine.exceptions import EngineDeadError

        client = llm.llm_engine.engine_core
        sentinels = [process.sentinel for process in client.resources.engine_manager.processes]
        outputs, resources = client.outputs_queue, client.resources
    except (AttributeError, ImportError, TypeError):  # an in-process engine core, or vLLM moved things
        return

    def watch() -> None:
        multiprocessing.connection.wait(sentinels)
        # Let vLLM's own monitor mark the engine dead and clean up first; it skips that if we mark it.
        deadline = time.monotonic() + 10
        while not resources.engine_dead and time.monotonic() < deadline:
            time.sleep(0.05)
        resources.engine_dead = True
        outputs.put_nowait(EngineDeadError(suppress_context=True))

    threading.Thread(target=watch, name="qwen3-rerank-engine-watch", daemon=True).start()


def _engine_is_dead(llm: Any) -> bool:
    resources = getattr(getattr(getattr(llm, "llm_engine", None), "engine_core", None), "resources", None)
    return bool(getattr(resources, "engine_dead", False))


def _is_engine_dead_error(exc: BaseException) -> bool:
    try:
        from vllm.v1.engine.exceptions import EngineDeadError
    except ImportError:  # pragma: no cover - moved in some vLLM version
        return False
    return isinstance(exc, EngineDeadError)


def _is_out_of_memory(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    # Older torch and some vLLM paths report it as a RuntimeError with this text.
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no message"
