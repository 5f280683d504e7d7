"""What every framework adapter shares: its settings, who owns its reranker, and how it round-trips.

Kept in the core so the LlamaIndex and LangChain distributions agree on one rule. This module is public
for adapter authors (its ``__all__`` is pinned by tests/unit/test_init_public_api.py and stable within 0.1).

An adapter is a pydantic model whose fields are everything needed to reopen its reranker (the model and
``RERANKER_FIELDS``) plus its own options. So
``model_validate(model_dump())``, ``from_dict``, pickle, cloudpickle and ``deepcopy`` all open a reranker with the same
settings; in the same process the vLLM engine is shared, not started again. A shallow copy (``model_copy()``) shares the
reranker but never owns it: closing the copy leaves the original's engine open.

The fields both adapters share are declared once, in
[`RerankerAdapterFields`][qwen3_rerank.adapter_support.RerankerAdapterFields] (pydantic v2, which LangChain and
LlamaIndex both bring): a wrong type or value is a ``pydantic.ValidationError`` at construction and on assignment, so
``except ValidationError`` around a config loaded from YAML or the environment catches it. The rules themselves are the
core's (``check_top_n``, ``check_threshold``, [`ChunkOptions`][qwen3_rerank.ChunkOptions]); a direct call of the core
keeps its ``Qwen3RerankTypeError``.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import numbers
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from .backends.registry import BACKEND_NAMES
from .chunking import ChunkOptions, cut_documents
from .errors import Qwen3RerankTypeError, Qwen3RerankValueError
from .prompt import DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH
from .reranker import DEFAULT_MODEL, Reranker
from .results import RankedDocument
from .validation import Query, check_documents, check_query, check_threshold, check_top_n

__all__ = [
    "CHUNK_FIELDS",
    "RERANKER_FIELDS",
    "RerankerAdapterFields",
    "RerankerAdapterMixin",
    "Threshold",
    "TopN",
    "adapter_arank",
    "adapter_fields",
    "adapter_rank",
    "check_chunk_fields",
    "chosen_model",
    "chunk_metadata",
    "coerce_threshold",
    "coerce_top_n",
    "cross_encoder_model_kwargs",
    "first_tokens",
    "given_reranker",
]

#: The [`Reranker`][qwen3_rerank.Reranker] constructor settings an adapter keeps as fields (besides ``model``).
RERANKER_FIELDS = ("backend", "engine_options", "max_length", "batch_size", "tokenizer", "show_progress")

#: The per-call long-document options an adapter keeps as fields (None: the reranker's own).
CHUNK_FIELDS = ("long_documents", "chunk_tokens", "chunk_overlap", "max_chunks")

_GIVEN: contextvars.ContextVar[Reranker | None] = contextvars.ContextVar("qwen3_rerank_given", default=None)


def chosen_model(model: str | None, reranker: Reranker | None, options: Mapping[str, Any]) -> str:
    """The model an adapter uses, after checking that ``model``, ``reranker`` and ``options`` agree.

    A passed-in reranker is used as is (so several adapters share one engine): options for a new
    Reranker cannot apply to it, and a different model name would be a contradiction.
    """
    if reranker is None:
        return DEFAULT_MODEL if model is None else model
    if not isinstance(reranker, Reranker):
        raise Qwen3RerankTypeError(f"reranker must be a qwen3_rerank.Reranker, got {type(reranker).__name__}")
    if options:
        raise Qwen3RerankValueError(
            f"{sorted(options)} configure a new Reranker; they cannot apply to the reranker you passed. "
            "Set them when you create that Reranker, or pass model=... instead."
        )
    if model is not None and model != reranker.model:
        raise Qwen3RerankValueError(f"model={model!r} differs from the reranker's model {reranker.model!r}; pass one")
    return reranker.model


def _device_name(device: Any) -> str:
    """A torch device as its name: ``torch.device("cuda", 1)`` -> ``"cuda:1"``, so settings stay JSON."""
    if isinstance(device, str):
        return device
    if type(device).__module__ == "torch" and type(device).__name__ == "device":
        return str(device)
    raise Qwen3RerankTypeError(f"device must be a str or a torch.device, got {type(device).__name__}: {device!r:.80}")


def _with_device(options: dict[str, Any], device: Any) -> dict[str, Any]:
    # SentenceTransformerRerank(device=...) picks a torch device; only the transformers backend has one.
    device = _device_name(device)
    if options.get("backend") != "transformers":
        raise Qwen3RerankValueError(
            f"device={device!r} selects a torch device, which only the transformers backend has; pass "
            f'backend="transformers", engine_options={{"device": "{device}"}} (vLLM uses its GPUs: '
            'engine_options={"tensor_parallel_size": ...}, or CUDA_VISIBLE_DEVICES).'
        )
    engine_options = dict(options.get("engine_options") or {})
    if _device_name(engine_options.get("device", device)) != device:
        raise Qwen3RerankValueError(f"device={device!r} contradicts engine_options device={engine_options['device']!r}")
    return {**options, "engine_options": {**engine_options, "device": device}}


def cross_encoder_model_kwargs(model_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """HuggingFaceCrossEncoder's ``model_kwargs`` as our arguments: ``{"device": ...}`` is ``device=``;
    anything else is refused, naming where it goes instead."""
    if model_kwargs is None:
        return {}
    if not isinstance(model_kwargs, Mapping):
        raise Qwen3RerankTypeError(f"model_kwargs must be a dict, got {type(model_kwargs).__name__}")
    unknown = sorted(set(model_kwargs) - {"device"})
    if unknown:
        raise Qwen3RerankValueError(
            f"model_kwargs {unknown} are sentence-transformers options, which qwen3-rerank does not take: "
            'pass device=... (with backend="transformers"); engine options go in engine_options={...}, '
            "prompt length in max_length=..."
        )
    return {"device": model_kwargs["device"]} if "device" in model_kwargs else {}


def adapter_fields(
    model: str | None,
    reranker: Reranker | None,
    options: dict[str, Any],
    instruction: str | None = None,
    device: Any = None,
) -> dict[str, Any]:
    """The ``model``, ``instruction`` and reranker-settings fields of an adapter.

    Takes the ``RERANKER_FIELDS`` out of ``options`` (what is left there
    is not ours: pydantic reports it as an extra input). For a passed-in reranker the fields are its own settings, so a
    round trip reopens the same reranker; its default instruction becomes the adapter's ``instruction``.
    """
    settings = {name: options.pop(name) for name in RERANKER_FIELDS if name in options}
    if device is not None:
        settings = _with_device(settings, device)
    fields: dict[str, Any] = {"model": chosen_model(model, reranker, settings), "instruction": instruction}
    if reranker is None:
        return {**fields, **settings}
    own = reranker.settings
    if instruction is None and reranker.instruction != DEFAULT_INSTRUCTION:
        fields["instruction"] = reranker.instruction
    engine_options = None if own.engine_options is None else dict(own.engine_options)
    return {
        **fields,
        **{name: getattr(own, name) for name in RERANKER_FIELDS},
        "backend": own.backend if isinstance(own.backend, str) else reranker.backend.name,
        "engine_options": engine_options,
    }


def check_chunk_fields(options: Mapping[str, Any]) -> None:
    """Check an adapter's ``CHUNK_FIELDS`` at construction (as the reranker
    would at the first query)."""
    ChunkOptions.create().replace(*(options.get(name) for name in CHUNK_FIELDS))


def first_tokens(reranker: Reranker, texts: Sequence[str], max_tokens: Any, what: str = "max_tokens") -> list[str]:
    """Each text cut after about its first ``max_tokens`` tokens (Cohere's ``max_tokens_per_doc``).

    The cut is the chunk cutter's (``cut_documents()``): the kept text is
    the first chunk of that size, so the prompt holds at most ``max_tokens`` of its ids, cut at a word (or
    character) boundary. The reranker's ``max_length`` still applies on top.
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, numbers.Integral) or max_tokens < 8:
        raise Qwen3RerankValueError(
            f"{what} must be an int >= 8 (documents are cut at word boundaries, chunks of at least 8 tokens) "
            f"or None, got {max_tokens!r}"
        )
    cuts = cut_documents(reranker.prompts, texts, int(max_tokens))
    return [text[c[0].char_start : c[0].char_end] if c else text for text, c in zip(texts, cuts, strict=True)]


def chunk_metadata(ranked: RankedDocument) -> dict[str, Any] | None:
    """The winning chunk of a chunk-mode result as plain metadata (index, score, token and char spans)."""
    return None if ranked.best_chunk is None else dataclasses.asdict(ranked.best_chunk)


@contextmanager
def given_reranker(reranker: Reranker | None) -> Iterator[None]:
    """Hands a passed-in reranker to
    ``RerankerAdapterMixin.model_post_init()`` during
    ``__init__``."""
    token = _GIVEN.set(reranker)
    try:
        yield
    finally:
        _GIVEN.reset(token)


def coerce_top_n(value: Any) -> int | None:
    """An adapter's ``top_n``: an int >= 0 (0 keeps nothing, as the peers do) or None (all).

    Numeric strings and integral floats coerce as pydantic's int fields do; other types are a TypeError.
    """
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise Qwen3RerankTypeError(f"top_n must be an int or None, got str {value!r}") from None
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, bool) and isinstance(value, numbers.Integral) and value <= 0:
        if value == 0:
            return 0
        raise Qwen3RerankValueError(f"top_n must be >= 0 (0 keeps nothing, None keeps all), got {value}")
    return check_top_n(value)


def coerce_threshold(value: Any) -> float | None:
    """An adapter's ``score_threshold`` in [0, 1] or None; a numeric string coerces like a float field."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise Qwen3RerankTypeError(
                f"score_threshold must be a number in [0, 1] or None, got str {value!r}"
            ) from None
    return check_threshold(value)


def adapter_rank(
    reranker: Reranker,
    query: Query,
    texts: Sequence[str],
    top_n: int | None,
    threshold: float | None = None,
    *,
    instruction: str | None = None,
    **options: Any,
) -> tuple[RankedDocument, ...]:
    """[`Reranker.rank()`][qwen3_rerank.Reranker.rank], where ``top_n=0`` checks the input and returns nothing without
    scoring.

    ``options`` are [`Reranker.rank()`][qwen3_rerank.Reranker.rank]'s per-call options (``long_documents``,
    ``chunk_tokens`` ...).
    """
    if top_n == 0:
        check_query(query, instruction, reranker.instruction)
        check_documents(texts)
        return ()
    return reranker.rank(query, texts, top_n, threshold, instruction=instruction, **options)


async def adapter_arank(
    reranker: Reranker,
    query: Query,
    texts: Sequence[str],
    top_n: int | None,
    threshold: float | None = None,
    *,
    instruction: str | None = None,
    **options: Any,
) -> tuple[RankedDocument, ...]:
    """Async [`adapter_rank()`][qwen3_rerank.adapter_support.adapter_rank]."""
    if top_n == 0:
        return adapter_rank(reranker, query, texts, 0, instruction=instruction)
    return await reranker.arank(query, texts, top_n, threshold, instruction=instruction, **options)


def _plain_number(value: Any) -> Any:
    # pydantic's lax int and float take True as 1; a count or a probability never is a bool. numpy
    # numbers become Python ones, as the core accepts them.
    if isinstance(value, bool):
        raise Qwen3RerankValueError(f"expected a number, got the bool {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, float):
        return float(value)
    return value


def _field_top_n(value: int | None) -> int | None:
    return coerce_top_n(value)


#: An adapter's ``top_n``: an int >= 0 or None; "3" and 3.0 parse as pydantic's int fields do.
TopN = Annotated[int | None, BeforeValidator(_plain_number), AfterValidator(_field_top_n)]
#: An adapter's ``score_threshold``: a number in [0, 1] or None.
Threshold = Annotated[float | None, BeforeValidator(_plain_number), AfterValidator(check_threshold)]


def _check_chunk_field(value: Any, info: ValidationInfo) -> Any:
    # With the chunk fields already validated (all of them on assignment), so chunk_overlap >= chunk_tokens
    # fails as it is set and the model keeps its valid value; the rules are ChunkOptions' own.
    fields = {name: info.data.get(name) for name in CHUNK_FIELDS}
    check_chunk_fields({**fields, str(info.field_name): value})
    return value


#: A chunk count; its bounds are [`ChunkOptions`][qwen3_rerank.ChunkOptions]'s.
ChunkCount = Annotated[int | None, BeforeValidator(_plain_number), AfterValidator(_check_chunk_field)]


class RerankerAdapterFields(BaseModel):
    """The pydantic fields every adapter shares, declared once: the model,
    ``RERANKER_FIELDS`` (frozen: they made the reranker), ``top_n``,
    ``score_threshold``, ``instruction`` and ``CHUNK_FIELDS``. An adapter
    redeclares a field only to change its default (``top_n``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field(
        default=DEFAULT_MODEL, frozen=True, description="Qwen3-Reranker model (Hub name or local directory)."
    )
    top_n: TopN = Field(default=3, description="How many documents to keep, best first; None keeps all, 0 none.")
    score_threshold: Threshold = Field(
        default=None, description="Drop documents whose relevance is below this value (in [0, 1]); None keeps all."
    )
    instruction: str | None = Field(
        default=None, description="Task instruction for the model; None uses the reranker's default."
    )
    backend: str = Field(default="vllm", frozen=True, description=f"One of {', '.join(map(repr, BACKEND_NAMES))}.")
    engine_options: dict[str, Any] | None = Field(default=None, frozen=True, description="Options of the backend.")
    max_length: int = Field(default=DEFAULT_MAX_LENGTH, frozen=True, description="Token budget of one prompt.")
    batch_size: int = Field(default=4096, frozen=True, description="Prompts handed to the backend per call.")
    tokenizer: str | None = Field(default=None, frozen=True, description="Tokenizer source, if not the model.")
    show_progress: bool = Field(default=False, frozen=True, description="Progress bar for large calls.")

    long_documents: Annotated[str | None, AfterValidator(_check_chunk_field)] = Field(
        default=None, description="'truncate' or 'chunk' (long documents score their best chunk); None: the reranker's."
    )
    chunk_tokens: ChunkCount = Field(default=None, description="Tokens per chunk in chunk mode; None: the reranker's.")
    chunk_overlap: ChunkCount = Field(default=None, description="Tokens chunks share; None: the reranker's.")
    max_chunks: ChunkCount = Field(default=None, description="Most chunks per document; None: the reranker's.")


def _rebuild(cls: type, fields: dict[str, Any]) -> Any:
    return cls(**fields)


class RerankerAdapterMixin:
    """Reranker ownership and round trips for a pydantic adapter (put it first among the bases).

    The adapter declares the fields ``model``, ``instruction``,
    ``RERANKER_FIELDS`` and
    ``CHUNK_FIELDS`` and the private attributes ``_reranker`` and
    ``_owns_reranker``, and builds inside ``with given_reranker(reranker):``.
    """

    _reranker: Reranker
    _owns_reranker: bool

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)  # type: ignore[misc]
        given = _GIVEN.get()
        if given is None:
            # Also the path of model_validate(...), which never calls __init__.
            options = {name: getattr(self, name) for name in RERANKER_FIELDS}
            self._reranker = Reranker(self.model, **options)  # type: ignore[attr-defined]
        else:
            self._reranker = given
        self._owns_reranker = given is None

    @property
    def reranker(self) -> Reranker:
        """The core scorer this adapter calls (possibly shared with others)."""
        return self._reranker

    def _rank(
        self, query: Query, texts: Sequence[str], top_n: int | None, threshold: float | None = None
    ) -> tuple[RankedDocument, ...]:
        """[`adapter_rank()`][qwen3_rerank.adapter_support.adapter_rank] with this adapter's instruction and chunk
        fields."""
        return adapter_rank(self._reranker, query, texts, top_n, threshold, **self._call_options())

    async def _arank(
        self, query: Query, texts: Sequence[str], top_n: int | None, threshold: float | None = None
    ) -> tuple[RankedDocument, ...]:
        """Async [`_rank()`][qwen3_rerank.adapter_support.RerankerAdapterMixin._rank]."""
        return await adapter_arank(self._reranker, query, texts, top_n, threshold, **self._call_options())

    def _call_options(self) -> dict[str, Any]:
        chunking = {name: getattr(self, name) for name in CHUNK_FIELDS}
        return {"instruction": self.instruction, **chunking}  # type: ignore[attr-defined]

    def close(self) -> None:
        """Release the engine if this adapter created its reranker; a passed-in or shared one stays open."""
        if self._owns_reranker:
            self._reranker.close()

    def _round_trip_fields(self) -> dict[str, Any]:
        self._reranker.__reduce__()  # raises a clear TypeError for a reranker over a backend object
        fields = type(self).model_fields  # type: ignore[attr-defined]  # the pydantic model this mixes into
        return {name: getattr(self, name) for name, info in fields.items() if not info.exclude}

    def __reduce__(self) -> tuple[Any, ...]:
        # Settings only: the engine cannot travel, so the copy reopens it (shared if in this process).
        return (_rebuild, (type(self), self._round_trip_fields()))

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Any:
        return _rebuild(type(self), copy.deepcopy(self._round_trip_fields(), memo))

    def __copy__(self) -> Any:
        copied = super().__copy__()  # type: ignore[misc]
        copied._owns_reranker = False  # shares the reranker; closing the copy must not close it
        return copied

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Any:
        """A copy; ``update`` is validated like an assignment. Changing the model or a reranker setting
        opens a reranker for the copy (which it then owns); otherwise a shallow copy shares this one."""
        update = dict(update or {})
        if update.keys() & {"model", *RERANKER_FIELDS}:
            return _rebuild(type(self), {**self._round_trip_fields(), **update})
        copied = super().model_copy(deep=deep)  # type: ignore[misc]
        for name, value in update.items():
            setattr(copied, name, value)  # validate_assignment checks each value
        return copied
