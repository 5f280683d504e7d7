"""What went wrong when vLLM did not score: each failure becomes one clear error, or an out-of-memory
signal the backend answers by splitting. Only public vLLM names are used (exception classes, the
``error`` field that vLLM >= 0.32 puts on a failed request's output)."""

from __future__ import annotations

from typing import Any

from ..errors import EngineError

__all__ = [
    "RequestFailedError",
    "engine_died",
    "failed_to_score",
    "first_line",
    "is_engine_dead",
    "is_out_of_memory",
    "output_error",
    "refused",
    "single_prompt_out_of_memory",
]


class RequestFailedError(EngineError):
    """vLLM reported one request as failed (an output carrying an error, or a refused request).

    It is never turned into a score; the call that sent it fails and the engine stays usable.
    """


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_engine_dead(exc: BaseException) -> bool:
    try:
        from vllm.v1.engine.exceptions import EngineDeadError
    except ImportError:  # pragma: no cover - moved in some vLLM version
        return False
    return any(isinstance(e, EngineDeadError) for e in _chain(exc))


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's OutOfMemoryError, or the RuntimeError text older torch and some vLLM paths use; vLLM's
    ``EngineGenerateError`` wraps either as its cause."""
    try:
        import torch

        oom: tuple[type[BaseException], ...] = (torch.OutOfMemoryError,)
    except (ImportError, AttributeError):  # pragma: no cover
        oom = ()
    for e in _chain(exc):
        if oom and isinstance(e, oom):
            return True
        if isinstance(e, RuntimeError) and "out of memory" in str(e).lower():
            return True
    return False


def first_line(exc: BaseException) -> str:
    """The first line of the innermost message (``EngineGenerateError`` itself says nothing)."""
    for e in _chain(exc):
        text = str(e).strip()
        if text:
            return f"{type(e).__name__}: {text.splitlines()[0]}"
    return type(exc).__name__


def engine_died(n: int, exc: BaseException) -> EngineError:
    return EngineError(
        f"The vLLM engine process died while scoring {n} prompts ({first_line(exc)}); none of them was "
        "scored. The engine restarts on the next call; if it keeps dying, its log above says why (often out "
        "of memory: lower max_length, batch_size or engine_options max_num_batched_tokens)."
    )


def failed_to_score(n: int, exc: BaseException) -> EngineError:
    return EngineError(f"vLLM failed to score {n} prompts: {first_line(exc)}")


def single_prompt_out_of_memory(tokens: int) -> EngineError:
    return EngineError(
        f"Out of memory scoring a single prompt of {tokens} tokens. Lower max_length, or give vLLM more "
        "memory (engine_options gpu_memory_utilization, a smaller max_num_batched_tokens)."
    )


def refused(position: int, n: int, tokens: int, exc: BaseException) -> RequestFailedError:
    return RequestFailedError(
        f"vLLM refused prompt {position} of {n} ({tokens} tokens): {first_line(exc)}; nothing of this call "
        "was scored. Prompts must be token ids of the model's vocabulary, at most max_length long."
    )


def output_error(output: Any, position: int, n: int, tokens: int) -> RequestFailedError | None:
    """The error a finished output carries (vLLM >= 0.32: ``output.error``), or None if it succeeded."""
    error = getattr(output, "error", None)
    if error is None:
        return None
    code = getattr(error, "code", None) or "error"
    message = getattr(error, "message", None) or repr(error)
    retry = " (vLLM says retrying may help)" if getattr(error, "retryable", False) else ""
    return RequestFailedError(
        f"vLLM failed request {position} of {n} ({tokens} tokens): {code}: {message}{retry}; "
        "nothing of this call was scored."
    )
