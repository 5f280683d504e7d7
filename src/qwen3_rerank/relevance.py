"""The model's score: P(yes) / (P(yes) + P(no)) at the last position, from the two logits.

Kept in one place so that every backend that sees raw logits computes the same thing the same way: the
difference and the sigmoid in float64 (Python floats), so a confident score stays below 1.0 until
z_yes - z_no exceeds ~36.7, where a float32 sigmoid would already read exactly 1.0 past ~16.6.
"""

from __future__ import annotations

import math

__all__ = ["YES_TOKEN_ID", "NO_TOKEN_ID", "relevance_from_logits"]

YES_TOKEN_ID = 9693
NO_TOKEN_ID = 2152


def relevance_from_logits(z_yes: float, z_no: float) -> float:
    """sigmoid(z_yes - z_no) in float64, which equals softmax([z_no, z_yes])[1] and never overflows."""
    diff = float(z_yes) - float(z_no)
    if diff >= 0:
        return 1.0 / (1.0 + math.exp(-diff))
    e = math.exp(diff)
    return e / (1.0 + e)
