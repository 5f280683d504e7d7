"""Checks on user input, so bad input fails here with a clear message and never deep inside an engine."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "Query",
    "check_documents",
    "check_pairs",
    "check_query",
    "check_text",
    "check_threshold",
    "check_top_n",
    "split_query",
]

#: A query is its text, or an ``(instruction, query)`` tuple that carries its own instruction.
Query = str | tuple[str, str]


def check_text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    hint = " Decode bytes first, e.g. value.decode('utf-8')." if isinstance(value, bytes | bytearray) else ""
    raise TypeError(f"{what} must be a str, got {type(value).__name__}: {value!r:.80}.{hint}")


def split_query(query: Any, default_instruction: str, what: str = "query") -> tuple[str, str]:
    """``query`` or ``(instruction, query)`` -> (instruction, query)."""
    if isinstance(query, tuple):
        if len(query) != 2:
            raise ValueError(f"{what} given as a tuple must be (instruction, query), got {len(query)} items")
        return check_text(query[0], f"{what}'s instruction"), check_text(query[1], what)
    return default_instruction, check_text(query, what)


def check_documents(documents: Any) -> list[str]:
    if isinstance(documents, str | bytes) or not isinstance(documents, Sequence):
        raise TypeError(
            f"documents must be a list of str, got {type(documents).__name__}; wrap a single document "
            "in a list: [document]"
        )
    return [check_text(doc, f"documents[{i}]") for i, doc in enumerate(documents)]


def check_pairs(pairs: Any, default_instruction: str) -> list[tuple[str, str, str]]:
    """(query, document) pairs -> (instruction, query, document) triples."""
    if isinstance(pairs, str | bytes) or not isinstance(pairs, Sequence):
        raise TypeError(f"pairs must be a list of (query, document) tuples, got {type(pairs).__name__}")
    triples = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValueError(
                f"pairs[{i}] must be a (query, document) pair, got {pair!r:.80}; a query with its own "
                "instruction is written ((instruction, query), document)"
            )
        instruction, query = split_query(pair[0], default_instruction, f"pairs[{i}] query")
        triples.append((instruction, query, check_text(pair[1], f"pairs[{i}] document")))
    return triples


def check_query(query: Any, instruction: Any, default_instruction: str) -> tuple[str, str]:
    if instruction is not None:
        default_instruction = check_text(instruction, "instruction")
    return split_query(query, default_instruction)


def check_top_n(top_n: Any) -> int | None:
    if top_n is None:
        return None
    if isinstance(top_n, bool) or not isinstance(top_n, int):
        raise TypeError(f"top_n must be an int or None, got {type(top_n).__name__}: {top_n!r}")
    if top_n <= 0:
        raise ValueError(f"top_n must be >= 1 (or None for all documents), got {top_n}")
    return top_n


def check_threshold(threshold: Any) -> float | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise TypeError(f"threshold must be a number in [0, 1] or None, got {type(threshold).__name__}")
    if math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1] (scores are probabilities), got {threshold}")
    return float(threshold)
