"""Reading the servers' answers: scores in request order, trusting only each result's own index."""

from __future__ import annotations

import json
import math
from typing import Any

from ..checkpoints import HF_OVERRIDES
from ..errors import ServerError
from .server_transport import Retryable

__all__ = ["parse_scores"]

# Where each endpoint puts its list of results, and each result its score.
_FIELDS = {"classify": ("data", "probs"), "rerank": ("results", "relevance_score"), "score": ("data", "score")}


def parse_scores(endpoint: str, body: Any, n: int, url: str) -> list[float]:
    """Scores in request order from a response of ``url`` to ``n`` prompts.

    Malformed answers (wrong count, missing/repeated/out-of-range index, a score outside [0, 1]) raise
    [`Retryable`][qwen3_rerank.backends.server_transport.Retryable]; a server started without the yes-vs-no head raises
    ServerError.
    """
    list_key, value_key = _FIELDS[endpoint]
    items = body.get(list_key) if isinstance(body, dict) else None
    if not isinstance(items, list) or len(items) != n:
        got = len(items) if isinstance(items, list) else "no list of"
        raise Retryable(url, f"answered {got} results for {n} prompts")
    scores: list[float | None] = [None] * n
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n or scores[index] is not None:
            raise Retryable(url, f"answered a result with a missing, repeated or out-of-range index {index!r}")
        value = item.get(value_key)
        if endpoint == "classify":
            if not isinstance(value, list) or len(value) != 1:
                raise ServerError(
                    f"{url} returned {len(value) if isinstance(value, list) else 'no'} class probabilities per "
                    "prompt, not the one yes-vs-no score: start it with --runner pooling --hf-overrides "
                    f"'{json.dumps(HF_OVERRIDES)}'",
                    urls=(url,),
                )
            value = value[0]
        valid = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not valid or not 0 <= value <= 1:
            raise Retryable(url, f"answered an invalid score {value!r} for index {index}")
        scores[index] = float(value)
    return [float(s) for s in scores if s is not None]
