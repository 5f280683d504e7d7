"""Checks on user input, so bad input fails here with a clear message and never deep inside an engine."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import Qwen3RerankTypeError, Qwen3RerankValueError

__all__ = [
    "Query",
    "check_documents",
    "check_count",
    "check_max_length",
    "check_optional_count",
    "check_pairs",
    "check_query",
    "check_text",
    "check_threshold",
    "check_top_n",
    "split_query",
]

#: A query is its text, or an ``(instruction, query)`` tuple that carries its own instruction
#: (``None`` as the instruction means the call's, else the reranker's, default).
Query = str | tuple[str | None, str]


def check_text(value: Any, what: str) -> str:
    if isinstance(value, str):
        # A lone surrogate (e.g. from bytes decoded with errors="surrogateescape") is not text a tokenizer
        # can encode; it would fail deep inside `tokenizers` with an unrelated-looking TypeError.
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise Qwen3RerankValueError(
                    f"{what} holds a lone surrogate {value[exc.start]!r} at index {exc.start}, which is not valid "
                    "Unicode text. Decode the source with errors='replace' (or re-encode it with "
                    "errors='surrogateescape' and decode it properly) before reranking."
                ) from None
        return value
    hint = " Decode bytes first, e.g. value.decode('utf-8')." if isinstance(value, bytes | bytearray) else ""
    raise Qwen3RerankTypeError(f"{what} must be a str, got {type(value).__name__}: {value!r:.80}.{hint}")


def split_query(query: Any, default_instruction: str, what: str = "query") -> tuple[str, str]:
    """``query`` or ``(instruction, query)`` -> (instruction, query).

    A tuple's own instruction wins over ``default_instruction``; ``(None, query)`` takes the default.
    """
    if isinstance(query, tuple):
        if len(query) != 2:
            raise Qwen3RerankValueError(f"{what} given as a tuple must be (instruction, query), got {len(query)} items")
        instruction = default_instruction if query[0] is None else check_text(query[0], f"{what}'s instruction")
        return instruction, _check_query_text(query[1], what)
    return default_instruction, _check_query_text(query, what)


def _check_query_text(query: Any, what: str) -> str:
    # Relevance to nothing: the model still answers, with a score that only reflects the document, which
    # would silently rank by noise (an unfilled search box, a missing CSV column). Documents may be empty.
    text = check_text(query, what)
    if not text.strip():
        shown = "empty" if not text else f"whitespace only ({text!r})"
        raise Qwen3RerankValueError(f"{what} is {shown}: give the text to rank the documents against")
    return text


def _materialise(items: Any, what: str, example: str) -> list[Any]:
    """Any iterable (list, tuple, generator, pandas Series, numpy array ...) as a list, read exactly once."""
    if isinstance(items, str | bytes | bytearray):
        one = what.removesuffix("s")
        raise Qwen3RerankTypeError(
            f"{what} must be a list (or another iterable) of {example}, got a single {type(items).__name__}; "
            f"wrap a single {one} in a list: [{one}]"
        )
    if isinstance(items, Mapping):
        raise Qwen3RerankTypeError(
            f"{what} must be a list (or another iterable) of {example}, got a {type(items).__name__}, whose "
            f"iteration would give its keys; pass list(mapping.values()) or list(mapping)"
        )
    if isinstance(items, list):
        return items
    if not isinstance(items, Iterable):
        raise Qwen3RerankTypeError(
            f"{what} must be a list (or another iterable) of {example}, got {type(items).__name__}: {items!r:.80}"
        )
    return list(items)


def check_documents(documents: Any) -> list[str]:
    """Documents from any iterable of str, as a new list of plain ``str`` (a generator is read once)."""
    docs = _materialise(documents, "documents", "str")
    # str subclasses (numpy.str_ from an array, ...) become plain str, so results hold plain text.
    return [_plain(check_text(doc, f"documents[{i}]")) for i, doc in enumerate(docs)]


def _plain(text: str) -> str:
    return text if type(text) is str else str.__str__(text)


def check_pairs(pairs: Any, default_instruction: str) -> list[tuple[str, str, str]]:
    """(query, document) pairs from any iterable -> (instruction, query, document) triples."""
    pairs = _materialise(pairs, "pairs", "(query, document) tuples")
    triples = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise Qwen3RerankValueError(
                f"pairs[{i}] must be a (query, document) pair, got {pair!r:.80}; a query with its own "
                "instruction is written ((instruction, query), document)"
            )
        instruction, query = split_query(pair[0], default_instruction, f"pairs[{i}] query")
        triples.append((_plain(instruction), _plain(query), _plain(check_text(pair[1], f"pairs[{i}] document"))))
    return triples


def check_query(query: Any, instruction: Any, default_instruction: str) -> tuple[str, str]:
    if instruction is not None:
        default_instruction = check_text(instruction, "instruction")
    return split_query(query, default_instruction)


def check_count(value: Any, what: str, *, minimum: int = 1, note: str = "") -> int:
    """The one check of a count (a batch size, a token budget ...): a whole number >= ``minimum``. numpy
    integers count (as int); ``True`` never does, though it is an int. ``note`` follows the rule in the
    message, e.g. ``"tokens"``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        rule = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise Qwen3RerankValueError(f"{what} must be {rule}{f' ({note})' if note else ''}, got {value!r}")
    return int(value)


def check_optional_count(value: Any, what: str, *, minimum: int = 1, note: str = "") -> int | None:
    """[`check_count()`][qwen3_rerank.validation.check_count], or None (which means no limit, or the default: ``note``
    says which)."""
    if value is None:
        return None
    try:
        return check_count(value, what, minimum=minimum)
    except Qwen3RerankValueError:
        rule = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise Qwen3RerankValueError(
            f"{what} must be {rule} or None{f' ({note})' if note else ''}, got {value!r}"
        ) from None


def check_max_length(max_length: Any) -> int:
    return check_count(max_length, "max_length", note="tokens")


def check_top_n(top_n: Any, name: str = "top_n", for_all: str = "or None for all documents") -> int | None:
    """``top_n`` as an int >= 1, or None; ``name`` and ``for_all`` spell the argument as the caller knows it
    (the CLI: ``--top-n``, "omit it for all documents")."""
    if top_n is None:
        return None
    # numbers.Integral admits numpy integers too; bool is an int but never a count.
    if isinstance(top_n, bool) or not isinstance(top_n, numbers.Integral):
        raise Qwen3RerankTypeError(f"{name} must be an int or None, got {type(top_n).__name__}: {top_n!r}")
    top_n = int(top_n)
    if top_n <= 0:
        raise Qwen3RerankValueError(f"{name} must be >= 1 ({for_all}), got {top_n}")
    return top_n


def check_threshold(threshold: Any) -> float | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise Qwen3RerankTypeError(f"threshold must be a number in [0, 1] or None, got {type(threshold).__name__}")
    threshold = float(threshold)
    if math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
        raise Qwen3RerankValueError(f"threshold must lie in [0, 1] (scores are probabilities), got {threshold}")
    return float(threshold)
