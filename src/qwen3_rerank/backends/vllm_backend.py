"""The default backend: vLLM in-process on its async engine, pooling runner, prompts passed as token ids.

vLLM loads the causal LM as ``Qwen3ForSequenceClassification`` and folds the LM-head rows "yes" and
"no" into one classifier row (w_yes - w_no). We ask for that row's raw output, the logit difference
z_yes - z_no, and take its sigmoid in float64
([`qwen3_rerank.relevance.relevance_from_logits()`][qwen3_rerank.relevance_from_logits]): vLLM's own float32 sigmoid
saturates at exactly 1.0 once the difference passes ~16.7.

Every call submits its prompts as requests with their own ids to one shared ``AsyncLLM``
([`vllm_engines`][qwen3_rerank.backends.vllm_engines]), so the requests of concurrent callers share engine steps
(continuous batching). Sync and async methods both run on the engine's event-loop thread
([`loop_thread`][qwen3_rerank.backends.loop_thread]); failures are sorted in
[`vllm_failures`][qwen3_rerank.backends.vllm_failures]; ``max_in_flight_prompts`` admission is
[`vllm_admission`][qwen3_rerank.backends.vllm_admission].
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ..checkpoints import HF_OVERRIDES, Checkpoint, hf_overrides_for
from ..errors import (
    BackendNotInstalledError,
    EngineError,
    ModelNotFoundError,
    NotAQwen3RerankerError,
    Qwen3RerankValueError,
)
from ..relevance import relevance_from_logits
from . import vllm_failures as failures
from .vllm_admission import validate_max_in_flight
from .vllm_engines import SharedEngine, acquire, live_engine_count, release
from .vllm_options import OWN_OPTIONS, VLLM_MISSING, default_engine_options, is_cpu_build

# Re-exported where callers (the bench, tests, docs) have always found them; they live in the checkpoint
# module (HF_OVERRIDES, hf_overrides_for) and in vllm_options (the options).
_is_cpu_build = is_cpu_build

__all__ = [
    "HF_OVERRIDES",
    "OWN_OPTIONS",
    "VLLMBackend",
    "default_engine_options",
    "hf_overrides_for",
    "live_engine_count",
]

logger = logging.getLogger(__name__)

#: vLLM versions whose public async-engine API this backend uses (checked: 0.26 on GPU, 0.32 in CI)
SUPPORTED_VLLM = ">=0.26,<0.33"


def _drop_chat_template_warning(record: logging.LogRecord) -> bool:
    return "chat-template" not in record.getMessage()


def _drop_raw_prompt_warning(record: logging.LogRecord) -> bool:
    # vLLM >= 0.32 would rather render prompts itself; ours are complete token ids by design.
    return "Passing raw prompts" not in record.getMessage()


def _start_engine(model: str, options: Mapping[str, Any], *, hf_overrides: Mapping[str, Any]) -> Any:
    """Build and start vLLM's async engine for ``model`` (runs on the engine's event-loop thread).

    The one place an engine is constructed: the first start and every restart come here.
    """
    if is_cpu_build():
        # Without this vLLM CPU reserves ~16 GB of KV cache up front, far more than scoring needs.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM
    except ImportError as exc:
        raise BackendNotInstalledError(VLLM_MISSING) from exc
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
    logging.getLogger("vllm.v1.engine.input_processor").addFilter(_drop_raw_prompt_warning)
    # Like vllm.LLM: no periodic stats lines in a library's log unless asked for.
    settings = {"disable_log_stats": True, **options}
    try:
        args = AsyncEngineArgs(model=model, runner="pooling", hf_overrides=dict(hf_overrides), **settings)
        return AsyncLLM.from_engine_args(args)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: the engine process failed to start
        message = str(exc)
        if "architecture" in message.lower() or "qwen3" in message.lower():
            raise NotAQwen3RerankerError(
                f"vLLM cannot load {model!r} as a Qwen3-Reranker: {message.splitlines()[0]}"
            ) from exc
        raise EngineError(
            f"vLLM could not start on {model!r}: {message.splitlines()[0] if message else type(exc).__name__}"
        ) from exc


def _raw_logit_params() -> Any:
    """Pooling parameters for a classify request that returns the classifier's raw output (no sigmoid).

    The switch is ``use_activation`` in the vLLM versions we support; older ones called it ``activation``.
    """
    from vllm import PoolingParams

    for switch in ("use_activation", "activation"):
        off: dict[str, Any] = {switch: False}
        try:
            return PoolingParams(task="classify", **off)
        except TypeError:
            continue
    raise BackendNotInstalledError(
        f"This vLLM's PoolingParams cannot turn the classifier's activation off; qwen3-rerank supports vLLM "
        f"{SUPPORTED_VLLM}."
    )


def _logit_of(output: Any) -> float:
    data = getattr(getattr(output, "outputs", None), "data", None)
    if data is None or getattr(data, "numel", lambda: 0)() != 1:
        raise EngineError(f"vLLM returned no single classifier value for request {output.request_id!r}: {output!r}")
    return float(data.reshape(-1)[0].item())


class VLLMBackend:
    """Scores prompts on a shared in-process ``AsyncLLM``.

    ``engine_options`` are vLLM engine arguments (``AsyncEngineArgs``), plus ours:
    ``max_in_flight_prompts`` (default None: no limit) caps how many prompts this process keeps in the
    engine at once across all callers; calls beyond it wait their turn, first come first served.
    """

    name = "vllm"

    def __init__(
        self, model: str | Checkpoint, *, max_length: int, engine_options: Mapping[str, Any] | None = None
    ) -> None:
        # A Reranker hands over the checkpoint it resolved; a model name is resolved (and checked) here.
        checkpoint = model if isinstance(model, Checkpoint) else Checkpoint.resolve(model)
        options = {**default_engine_options(max_length), **dict(engine_options or {})}
        if options.get("dtype", "auto") == "auto":
            options.update(checkpoint.vllm_dtype_options)
        if "hf_overrides" in options or "runner" in options:
            raise Qwen3RerankValueError("engine_options may not set hf_overrides or runner: qwen3-rerank sets them")
        if int(options["max_model_len"]) < max_length:
            raise Qwen3RerankValueError(
                f"engine_options max_model_len={options['max_model_len']} is below max_length={max_length}: "
                "prompts of max_length tokens would not fit. Lower max_length or raise max_model_len."
            )
        max_in_flight = validate_max_in_flight(options.pop("max_in_flight_prompts", None))
        self.engine_options: dict[str, Any] = options
        self.max_in_flight_prompts: int | None = max_in_flight
        start = functools.partial(_start_engine, hf_overrides=checkpoint.hf_overrides)
        self._shared: SharedEngine | None = acquire(checkpoint.model, options, start, max_in_flight)
        self.max_prompt_tokens: int | None = self._shared.max_model_len
        #: after an out-of-memory error, the group size its split came down to (later calls start there)
        self._oom_cap: int | None = None
        self._calls = itertools.count()
        self._params = _raw_logit_params()

    @property
    def engine(self) -> Any:
        """The underlying ``vllm.v1.engine.async_llm.AsyncLLM`` (shared; do not close or call it yourself:
        it runs on its own event-loop thread)."""
        return self._live_shared().engine

    @property
    def in_flight_prompts(self) -> int:
        """Prompts this process has in the engine right now, all callers of this engine together."""
        return self._live_shared().gate.in_flight

    def _live_shared(self) -> SharedEngine:
        if self._shared is None:
            raise EngineError("This reranker is closed; create a new one.")
        return self._shared

    # -- entry points -------------------------------------------------------------------------------
    #
    # Failure handling (on the engine loop, per group of prompts submitted together):
    # - cancellation (a cancelled task, a timeout, Ctrl-C in a sync caller): the call's tasks are cancelled
    #   and its requests aborted (``AsyncLLM.abort``); the caller returns only after that, so the engine
    #   then holds none of its requests.
    # - out of memory: the group is aborted, split in halves and retried down to single prompts; later calls
    #   of this backend submit groups of the size the split reached instead of running out of memory again.
    # - the engine process dies: one EngineError; the next call restarts the engine (same model and
    #   options) for every reranker sharing it, so the object stays usable.
    # - a request vLLM refuses or reports as failed: one RequestFailedError naming the prompt; never a score.

    def score_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        if not prompts:
            return []
        shared = self._live_shared()
        return shared.loop.run(self._score_call(shared, prompts))

    async def ascore_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        if not prompts:
            return []
        shared = self._live_shared()
        return await shared.loop.arun(self._score_call(shared, prompts))

    def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            release(shared)

    # -- on the engine loop -------------------------------------------------------------------------

    async def _score_call(self, shared: SharedEngine, prompts: Sequence[Sequence[int]]) -> list[float]:
        # Every prompt is scored, copies included: de-duplicating is the caller's (ScoringBackend says why).
        batch = [list(p) for p in prompts]
        call_id = f"q3r-{uuid.uuid4().hex[:12]}-{next(self._calls)}"
        engine = await shared.live_engine()
        groups = itertools.count()
        scores: list[float] = []
        size = shared.gate.group_size(min(self._oom_cap or len(batch), len(batch)))
        for start in range(0, len(batch), size):
            scores += await self._score_splitting(shared, engine, batch[start : start + size], call_id, groups)
        if len(scores) != len(batch):
            raise EngineError(f"vLLM returned {len(scores)} results for {len(batch)} prompts")
        return scores

    async def _score_splitting(
        self, shared: SharedEngine, engine: Any, prompts: list[list[int]], call_id: str, groups: itertools.count[int]
    ) -> list[float]:
        try:
            return await self._score_group(shared, engine, prompts, f"{call_id}-g{next(groups)}")
        except (EngineError, asyncio.CancelledError):
            raise
        except Exception as exc:
            if engine.errored or failures.is_engine_dead(exc):
                raise failures.engine_died(len(prompts), exc) from exc
            if not failures.is_out_of_memory(exc):
                raise failures.failed_to_score(len(prompts), exc) from exc
            if len(prompts) == 1:
                raise failures.single_prompt_out_of_memory(len(prompts[0])) from exc
            half = (len(prompts) + 1) // 2
            self._oom_cap = min(self._oom_cap or half, half)
            logger.warning(
                "qwen3-rerank: out of memory scoring %d prompts; retrying in groups of %d", len(prompts), half
            )
            first = await self._score_splitting(shared, engine, prompts[:half], call_id, groups)
            return first + await self._score_splitting(shared, engine, prompts[half:], call_id, groups)

    async def _score_group(
        self, shared: SharedEngine, engine: Any, prompts: list[list[int]], group_id: str
    ) -> list[float]:
        """Submit a group of prompts as requests at once; their logits, matched back by request id."""
        await shared.gate.acquire(len(prompts))
        ids = [f"{group_id}-{i}" for i in range(len(prompts))]
        tasks = [
            asyncio.ensure_future(self._score_one(engine, rid, p, i, len(prompts)))
            for i, (rid, p) in enumerate(zip(ids, prompts, strict=True))
        ]
        try:
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            if pending:  # one request failed: nothing of this group is scored
                failed = next(t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None)
                raise failed.exception()  # type: ignore[misc]
            return [task.result() for task in tasks]
        finally:
            # Cancelled, failed or done: no request of this group may stay in the engine.
            unfinished = [task for task in tasks if not task.done()]
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.gather(*unfinished, return_exceptions=True)
                if not engine.errored:
                    try:
                        await engine.abort(ids)
                    except Exception:  # the engine going down aborts them anyway
                        logger.debug("qwen3-rerank: abort of %d requests failed", len(ids), exc_info=True)
            for task in tasks:  # retrieve every exception so asyncio does not log them as unhandled
                if task.done() and not task.cancelled():
                    task.exception()
            shared.gate.release(len(prompts))

    async def _score_one(self, engine: Any, request_id: str, prompt: list[int], position: int, n: int) -> float:
        from vllm.inputs import TokensPrompt

        final = None
        try:
            async for output in engine.encode(TokensPrompt(prompt_token_ids=prompt), self._params.clone(), request_id):
                final = output
        except (asyncio.CancelledError, EngineError):
            raise
        except Exception as exc:
            if _is_client_error(exc):
                raise failures.refused(position, n, len(prompt), exc) from exc
            raise
        if final is None or not final.finished:
            raise EngineError(f"vLLM ended request {request_id!r} without a finished output")
        if final.request_id != request_id:
            raise EngineError(f"vLLM answered request {request_id!r} with the output of {final.request_id!r}")
        error = failures.output_error(final, position, n, len(prompt))
        if error is not None:
            raise error
        return relevance_from_logits(_logit_of(final), 0.0)


def _is_client_error(exc: BaseException) -> bool:
    """vLLM refused the request itself (bad input), as opposed to failing while running it."""
    try:
        from vllm.exceptions import VLLMValidationError
    except ImportError:  # pragma: no cover - present in every supported vLLM
        return False
    return isinstance(exc, VLLMValidationError)
