"""Figures shared by the worker and the report: model FLOPs, MFU, percentiles, score differences.

MFU = 2 x N x tokens/s / peak, where N counts the parameters every prompt token multiplies: the
q/k/v/o projections and the three MLP matrices of every layer (the embedding is a lookup and a scorer
needs one LM-head row per prompt, not one per token; attention-score FLOPs are left out). Tokens are
all prompt tokens, including any that vLLM's prefix cache lets it skip, so the figure is "useful work
per second", the same yardstick for every contender.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

__all__ = ["H100_BF16_PEAK", "linear_params", "mfu", "percentile", "max_abs_diff", "top_changes"]

#: Measured dense bf16 matrix-product rate of the H100s lent here (8192^3 product, random data).
H100_BF16_PEAK = 790e12


def linear_params(model_dir: str | Path) -> int:
    """Parameters of the per-token matrix products, from the checkpoint's config.json."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    hidden = config["hidden_size"]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    mlp = 3 * hidden * config["intermediate_size"]
    return config["num_hidden_layers"] * (attention + mlp)


def mfu(tokens_per_s: float, params: int, peak: float = H100_BF16_PEAK) -> float:
    return 2.0 * params * tokens_per_s / peak


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), without needing numpy."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def max_abs_diff(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        raise ValueError(f"score lists differ in length: {len(a)} vs {len(b)}")
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)


def top_changes(a: Sequence[float], b: Sequence[float], group: int) -> float:
    """Share of queries (consecutive runs of ``group`` scores, query-major) whose best document differs."""
    if len(a) != len(b) or not a or len(a) % group:
        raise ValueError(f"need two equal score lists of whole queries of {group}, got {len(a)} and {len(b)}")
    best = lambda s, q: max(range(q * group, (q + 1) * group), key=lambda i: (s[i], -i))  # noqa: E731
    queries = len(a) // group
    return sum(best(a, q) != best(b, q) for q in range(queries)) / queries
