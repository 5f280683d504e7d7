"""The scorer API: configure a [`Reranker`][qwen3_rerank.Reranker] once, then score, rank, sync or async."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from . import prompt as prompt_module
from .backends.base import ScoringBackend, unique_prompts
from .backends.registry import (
    BackendName,
    backend_choices,
    check_engine_options,
    loads_checkpoint,
    open_backend,
)
from .calls import Call, CallPlanner
from .checkpoints import Checkpoint
from .chunking import ChunkOptions, LongDocuments
from .errors import EngineError, Qwen3RerankTypeError, Qwen3RerankValueError
from .progress import progress
from .prompt import DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH, DocumentChunk, PromptBuilder
from .results import RankedDocument
from .settings import DEFAULT_MODEL, RerankerSettings
from .validation import (
    Query,
)

__all__ = ["DEFAULT_MODEL", "Reranker"]


class Reranker:
    """Scores how relevant documents are to a query with a Qwen3-Reranker model.

    Args:
        model: a Hub name (``Qwen/Qwen3-Reranker-0.6B``, ``-4B``, ``-8B``) or a local directory.
        backend: ``"vllm"`` (default, in-process), ``"transformers"`` (reference, no vLLM needed),
            ``"packed"`` (shared-prefix padding-free scoring on one GPU or the CPU, no vLLM needed),
            ``"server"`` (running vLLM servers; ``engine_options={"base_urls": [...]}``), or a
            [`ScoringBackend`][qwen3_rerank.ScoringBackend] object (e.g. one shared by several rerankers;
            closing the reranker leaves such an object open).
        instruction: the task instruction used when a call gives none. The most specific instruction wins:
            a query given as an ``(instruction, query)`` tuple uses its own (``(None, query)`` means none of
            its own), then a call's ``instruction=``, then this one.
        max_length: token budget of a whole prompt; only documents are ever truncated (from their end).
        batch_size: prompts handed to the backend per call (progress granularity and peak memory).
        engine_options: passed to the backend: vLLM engine arguments (``AsyncEngineArgs``:
            ``tensor_parallel_size``, ``gpu_memory_utilization``, ``dtype``, ``quantization``, ``max_num_seqs``
            ...) and ``max_in_flight_prompts`` for vLLM; ``device``, ``dtype`` and ``batch_size`` for
            transformers; ``device``, ``dtype``, ``token_budget``, ``attention``, ``compile`` for packed. Names
            are checked before anything loads.
        tokenizer: where to load the tokenizer from, when not from ``model``.
        show_progress: show a progress bar for calls larger than one batch.
        long_documents: ``"truncate"`` (default): a document longer than what fits is cut from its end;
            ``"chunk"``: it is cut into chunks that each get the canonical prompt of their text, and its
            score is the best chunk's (see docs/concepts/truncation.md). Every call may override it.
        chunk_tokens: ids per chunk in chunk mode; None: all that fits beside the template and query.
        chunk_overlap: ids consecutive chunks share (about; cuts fall on word boundaries), < chunk_tokens.
        max_chunks: most chunks per document; a document that needs more raises
            [`DocumentTooLongError`][qwen3_rerank.DocumentTooLongError] before anything is scored. None: no limit.

    Documents may be any iterable of str (a list, tuple, generator, pandas Series, numpy array ...); it is
    read once. Identical prompts (the same document for the same query) are scored once, so their scores
    are identical and ties keep input order in [`rank()`][qwen3_rerank.Reranker.rank].

    Every argument is checked before the tokenizer or model loads, so a typo fails at once.

    Scores are Python floats in [0, 1]: P(yes) / (P(yes) + P(no)) for the prompt Qwen3-Reranker was
    trained with. Use as a context manager, or call [`close()`][qwen3_rerank.Reranker.close], to release the engine.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        backend: BackendName | ScoringBackend = "vllm",
        instruction: str = DEFAULT_INSTRUCTION,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = 4096,
        engine_options: Mapping[str, Any] | None = None,
        tokenizer: str | None = None,
        show_progress: bool = False,
        long_documents: LongDocuments = "truncate",
        chunk_tokens: int | None = None,
        chunk_overlap: int = 0,
        max_chunks: int | None = 64,
    ) -> None:
        # Everything that needs no tokenizer or model is checked first: loading them takes seconds.
        settings = RerankerSettings.create(
            model,
            backend=backend,
            instruction=instruction,
            max_length=max_length,
            batch_size=batch_size,
            engine_options=engine_options,
            tokenizer=tokenizer,
            show_progress=show_progress,
            long_documents=long_documents,
            chunk_tokens=chunk_tokens,
            chunk_overlap=chunk_overlap,
            max_chunks=max_chunks,
        )
        # What pickling, deepcopy and the adapters' round trips reopen (see __reduce__).
        self._config = settings
        # The checkpoint is read once, here, and handed to the prompt builder and the backend. Its check takes
        # milliseconds and the tokenizer well under a second, so a wrong model fails before an engine starts.
        # A local directory is checked first: the tokenizer loader would report a broken one as "not found".
        loads = loads_checkpoint(backend)
        checkpoint = Checkpoint.resolve(model) if loads and os.path.isdir(os.path.expanduser(model)) else None
        if checkpoint is not None:
            checkpoint.check_max_length(max_length)
        if isinstance(backend, str):
            # After the millisecond checkpoint check: checking vLLM's options imports vLLM (seconds).
            engine_options = check_engine_options(backend, engine_options)
        hf_tokenizer = prompt_module.load_hf_tokenizer(tokenizer or model)
        if checkpoint is None:
            # After the tokenizer: it names a Hub model that does not exist, and downloading it brings the config.
            checkpoint = Checkpoint.resolve(model) if loads else Checkpoint.cached(model)
            if loads:
                checkpoint.check_max_length(max_length)
        #: the model as read before loading it (config, kind, context length)
        self.checkpoint: Checkpoint = checkpoint
        self.prompts = PromptBuilder(hf_tokenizer, max_length=max_length, context_length=checkpoint.context_length)
        self._backend: ScoringBackend | None = (
            open_backend(backend, checkpoint, max_length, engine_options) if isinstance(backend, str) else backend
        )
        # A backend object passed in may serve other rerankers too: it stays its owner's to close.
        self._owns_backend = isinstance(backend, str)
        limit = self._backend.max_prompt_tokens
        if limit is not None and limit < max_length:
            self.close()
            raise Qwen3RerankValueError(
                f"max_length={max_length} exceeds what the backend accepts ({limit} tokens); "
                f"pass max_length <= {limit}."
            )

    @classmethod
    def from_settings(cls, settings: RerankerSettings) -> Reranker:
        """A reranker configured by ``settings`` (what [`settings`][qwen3_rerank.Reranker.settings] of another one
        returns)."""
        if not isinstance(settings, RerankerSettings):
            raise Qwen3RerankTypeError(f"settings must be a RerankerSettings, got {type(settings).__name__}")
        return cls(**settings.keywords())

    # -- settings (read-only: make another reranker, or use with_options, for other ones) ------------

    @property
    def settings(self) -> RerankerSettings:
        """This reranker's settings, frozen; ``Reranker.from_settings(settings)`` makes another like it."""
        return self._config

    @property
    def model(self) -> str:
        return self._config.model

    @property
    def instruction(self) -> str:
        """The task instruction used when a call gives none."""
        return self._config.instruction

    @property
    def batch_size(self) -> int:
        return self._config.batch_size

    @property
    def show_progress(self) -> bool:
        return self._config.show_progress

    @property
    def chunking(self) -> ChunkOptions:
        """The long-document options calls use unless they give their own."""
        return self._config.chunking

    # -- plumbing -----------------------------------------------------------------------------------

    @property
    def backend(self) -> ScoringBackend:
        if self._backend is None:
            raise EngineError("This Reranker is closed; create a new one.")
        return self._backend

    @property
    def max_length(self) -> int:
        return self.prompts.max_length

    def _batches(self, prompts: list[Any]) -> Iterator[list[list[int]]]:
        enabled = self.show_progress and len(prompts) > self.batch_size
        with progress(len(prompts), enabled=enabled, desc="reranking", unit="doc") as bar:
            for start in range(0, len(prompts), self.batch_size):
                yield prompts[start : start + self.batch_size]
                bar.update(min(self.batch_size, len(prompts) - start))

    # Identical prompts are scored once (backends.base.unique_prompts says why), for every backend.

    def _score(self, prompts: list[list[int]]) -> list[float]:
        backend = self.backend
        unique, slots = unique_prompts(prompts)
        scores: list[float] = []
        for batch in self._batches(unique):
            scores.extend(backend.score_prompts(batch))
        scores = _checked(scores, len(unique))
        return [scores[slot] for slot in slots]

    async def _ascore(self, prompts: list[list[int]]) -> list[float]:
        backend = self.backend
        unique, slots = unique_prompts(prompts)
        scores: list[float] = []
        for batch in self._batches(unique):
            scores.extend(await backend.ascore_prompts(batch))
        scores = _checked(scores, len(unique))
        return [scores[slot] for slot in slots]

    def _options(self, long_documents: Any, chunk_tokens: Any, chunk_overlap: Any, max_chunks: Any) -> ChunkOptions:
        return self.chunking.replace(long_documents, chunk_tokens, chunk_overlap, max_chunks)

    # Every call is a Call planned on the caller's thread (sync) or a worker thread (async): the prompts it
    # scores and how their scores become its answer (calls.py). Sync and async differ only in how the prompts
    # are scored.

    @property
    def _planner(self) -> CallPlanner:
        return CallPlanner(self.prompts, self.instruction)

    def _run(self, call: Call[T]) -> T:
        return call.finish(self._score(call.prompts))

    async def _arun(self, plan: Callable[..., Call[T]], *args: Any) -> T:
        call = await asyncio.to_thread(plan, *args)
        return call.finish(await self._ascore(call.prompts))

    # -- sync API -----------------------------------------------------------------------------------

    def score(
        self,
        query: Query,
        documents: Iterable[str],
        *,
        instruction: str | None = None,
        long_documents: LongDocuments | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        max_chunks: int | None = None,
    ) -> list[float]:
        """One score per document, in input order. ``query`` may be ``(instruction, query)``.

        ``long_documents``, ``chunk_tokens``, ``chunk_overlap``, ``max_chunks``: this call's chunking
        (None: the reranker's); in chunk mode a document's score is its best chunk's.
        """
        options = self._options(long_documents, chunk_tokens, chunk_overlap, max_chunks)
        return self._run(self._planner.score(query, documents, instruction, options))

    def score_pairs(
        self,
        pairs: Iterable[tuple[Query, str]],
        *,
        instruction: str | None = None,
        long_documents: LongDocuments | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        max_chunks: int | None = None,
    ) -> list[float]:
        """One score per (query, document) pair, in input order; a query may be ``(instruction, query)``."""
        options = self._options(long_documents, chunk_tokens, chunk_overlap, max_chunks)
        return self._run(self._planner.pairs(pairs, instruction, options))

    def compute_scores(self, pairs: Iterable[tuple[Query, str]], *, instruction: str | None = None) -> list[float]:
        """Alias of [`score_pairs()`][qwen3_rerank.Reranker.score_pairs], the name the original Qwen3-Reranker script
        uses."""
        return self.score_pairs(pairs, instruction=instruction)

    def score_chunks(
        self,
        query: Query,
        documents: Iterable[str],
        *,
        instruction: str | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        max_chunks: int | None = None,
    ) -> list[tuple[DocumentChunk, ...]]:
        """Every chunk of every document with its score, in input order (chunk mode, whatever the default).

        A document's chunks are in text order; its chunk-mode score is the largest chunk score.
        """
        options = self._options("chunk", chunk_tokens, chunk_overlap, max_chunks)
        return self._run(self._planner.chunks(query, documents, instruction, options))

    def rank(
        self,
        query: Query,
        documents: Iterable[str],
        top_n: int | None = None,
        threshold: float | None = None,
        *,
        instruction: str | None = None,
        long_documents: LongDocuments | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        max_chunks: int | None = None,
        return_chunks: bool = False,
    ) -> tuple[RankedDocument, ...]:
        """Documents best first (ties in input order), each with its input index and score.

        ``threshold`` keeps documents scoring at least that much; ``top_n`` then keeps the first n. In chunk
        mode each result's ``best_chunk`` says which chunk won (its token and character span), and with
        ``return_chunks=True`` its ``chunks`` hold every chunk's score.
        """
        options = self._options(long_documents, chunk_tokens, chunk_overlap, max_chunks)
        return self._run(self._planner.rank(query, documents, top_n, threshold, instruction, options, return_chunks))

    # -- async API: the same jobs, built in a worker thread, scored without blocking the event loop ----------

    async def ascore(
        self,
        query: Query,
        documents: Iterable[str],
        *,
        instruction: str | None = None,
        long_documents: LongDocuments | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        max_chunks: int | None = None,
    ) -> list[float]:
        """Async [`score()`][qwen3_rerank.Reranker.score]; the engine works in another thread, never on the event
        loop."""
        options = self._options(long_documents, chunk_tokens, chunk_overlap, max_chunks)
        return await self._arun(self._planner.score, query, documents, instruction, options)

    async def ascore_pairs(
        self,
        pairs: Iterable[tuple[Query, str]],
        *,
        instruction: str | None = None,
        long_documents: LongDocuments | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        max_chunks: int | None = None,
    ) -> list[float]:
        """Async [`score_pairs()`][qwen3_rerank.Reranker.score_pairs]."""
        options = self._options(long_documents, chunk_tokens, chunk_overlap, max_chunks)
        return await self._arun(self._planner.pairs, pairs, instruction, options)

    async def acompute_scores(
        self, pairs: Iterable[tuple[Query, str]], *, instruction: str | None = None
    ) -> list[float]:
        """Async [`compute_scores()`][qwen3_rerank.Reranker.compute_scores]."""
        return await self.ascore_pairs(pairs, instruction=instruction)

    async def ascore_chunks(
        self,
        query: Query,
        documents: Iterable[str],
        *,
        instruction: str | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        max_chunks: int | None = None,
    ) -> list[tuple[DocumentChunk, ...]]:
        """Async [`score_chunks()`][qwen3_rerank.Reranker.score_chunks]."""
        options = self._options("chunk", chunk_tokens, chunk_overlap, max_chunks)
        return await self._arun(self._planner.chunks, query, documents, instruction, options)

    async def arank(
        self,
        query: Query,
        documents: Iterable[str],
        top_n: int | None = None,
        threshold: float | None = None,
        *,
        instruction: str | None = None,
        long_documents: LongDocuments | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        max_chunks: int | None = None,
        return_chunks: bool = False,
    ) -> tuple[RankedDocument, ...]:
        """Async [`rank()`][qwen3_rerank.Reranker.rank]."""
        options = self._options(long_documents, chunk_tokens, chunk_overlap, max_chunks)
        return await self._arun(
            self._planner.rank, query, documents, top_n, threshold, instruction, options, return_chunks
        )

    def with_options(
        self,
        *,
        long_documents: LongDocuments | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        max_chunks: int | None = None,
    ) -> Reranker:
        """A reranker with other chunking defaults that shares this one's engine (closing it keeps the engine)."""
        # Not copy.copy: that goes through __reduce__, which reopens an engine instead of sharing this one.
        view = object.__new__(Reranker)
        view.__dict__.update(self.__dict__)
        chunking = self._options(long_documents, chunk_tokens, chunk_overlap, max_chunks)
        view._config = dataclasses.replace(self._config, chunking=chunking)
        view._owns_backend = False
        return view

    # -- lifetime -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the engine (and its GPU memory once no other reranker shares it). Idempotent.

        A backend object that was passed in is left open: whoever created it closes it.
        """
        backend, self._backend = self._backend, None
        if backend is not None and self._owns_backend:
            backend.close()

    @property
    def closed(self) -> bool:
        return self._backend is None

    def __enter__(self) -> Reranker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle, cloudpickle and deepcopy keep the constructor's settings and reopen the engine on load.

        In the same process a vLLM engine is not started twice: the copy shares the live one (engines are
        shared per model and options); in another process (a Ray worker) the copy opens its own.
        """
        backend = self._config.backend
        if not isinstance(backend, str):
            raise Qwen3RerankTypeError(
                f"A Reranker over a backend object ({type(backend).__name__}) cannot be pickled or copied: the "
                f"object is not ours to reopen. Create the Reranker with backend={backend_choices()} "
                "(and engine_options=...) instead."
            )
        return (_reopen, (self._config,))

    def __repr__(self) -> str:
        state = "closed" if self._backend is None else self._backend.name
        return f"Reranker(model={self.model!r}, backend={state}, max_length={self.max_length})"


T = TypeVar("T")


def _checked(scores: list[float], expected: int) -> list[float]:
    if len(scores) != expected:
        raise EngineError(f"the backend returned {len(scores)} scores for {expected} prompts")
    return scores


def _reopen(settings: RerankerSettings | dict[str, Any]) -> Reranker:
    # A dict: pickled by a version before RerankerSettings.
    return Reranker(**settings) if isinstance(settings, dict) else Reranker.from_settings(settings)
