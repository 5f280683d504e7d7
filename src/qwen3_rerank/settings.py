"""The one spelling of a [`Reranker`][qwen3_rerank.Reranker]'s settings:
[`RerankerSettings`][qwen3_rerank.RerankerSettings], frozen, with the long-document
[`ChunkOptions`][qwen3_rerank.ChunkOptions] inside.

A reranker is built from its settings, exposes them (``Reranker.settings``), pickles as them, and the Ray
scorer, the CLI and the adapters build rerankers from them. Everything here is checked in microseconds,
before a tokenizer or a model loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .backends.base import ScoringBackend
from .backends.registry import BackendName, backend_choices, check_backend_name
from .chunking import ChunkOptions, LongDocuments
from .errors import Qwen3RerankTypeError, Qwen3RerankValueError
from .prompt import DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH
from .validation import check_count, check_max_length, check_text

__all__ = ["DEFAULT_MODEL", "RerankerSettings"]

DEFAULT_MODEL = "Qwen/Qwen3-Reranker-0.6B"


@dataclass(frozen=True, slots=True)
class RerankerSettings:
    """What a [`Reranker`][qwen3_rerank.Reranker] is configured with; its arguments mean what the Reranker's do.

    Build one with [`create()`][qwen3_rerank.RerankerSettings.create] (it checks every value);
    [`keywords()`][qwen3_rerank.RerankerSettings.keywords] gives the Reranker's keyword arguments back (the chunk
    options flat), so ``Reranker(**settings.keywords())`` rebuilds it. ``engine_options`` is the reranker's own copy:
    treat it as read-only.
    """

    model: str = DEFAULT_MODEL
    backend: BackendName | ScoringBackend = "vllm"
    instruction: str = DEFAULT_INSTRUCTION
    max_length: int = DEFAULT_MAX_LENGTH
    batch_size: int = 4096
    engine_options: Mapping[str, Any] | None = None
    tokenizer: str | None = None
    show_progress: bool = False
    chunking: ChunkOptions = dataclasses.field(default_factory=ChunkOptions)

    @classmethod
    def create(
        cls,
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
    ) -> RerankerSettings:
        """Checked settings (the backend's ``engine_options`` names are checked when it opens)."""
        check_text(model, "model")
        chunking = ChunkOptions.create(long_documents, chunk_tokens, chunk_overlap, max_chunks)
        check_text(instruction, "instruction")
        batch_size = check_count(batch_size, "batch_size")
        check_max_length(max_length)
        if tokenizer is not None:
            check_text(tokenizer, "tokenizer")
        if isinstance(backend, str):
            check_backend_name(backend)
        elif not isinstance(backend, ScoringBackend):
            raise Qwen3RerankTypeError(
                f"backend must be {backend_choices()} or a ScoringBackend object, got {backend!r}"
            )
        elif engine_options:
            raise Qwen3RerankValueError("engine_options apply to a backend qwen3-rerank opens, not to one you pass in")
        options = None if engine_options is None else dict(engine_options)
        return cls(model, backend, instruction, max_length, batch_size, options, tokenizer, show_progress, chunking)

    def keywords(self) -> dict[str, Any]:
        """The Reranker's keyword arguments for these settings (``model`` included, chunk options flat)."""
        flat = {field.name: getattr(self, field.name) for field in dataclasses.fields(self) if field.name != "chunking"}
        if flat["engine_options"] is not None:
            flat["engine_options"] = dict(flat["engine_options"])
        return {**flat, **dataclasses.asdict(self.chunking)}

    def replace(self, **changes: Any) -> RerankerSettings:
        """These settings with some changed (keyword names as for [`create()`][qwen3_rerank.RerankerSettings.create]),
        checked again."""
        return RerankerSettings.create(**{**self.keywords(), **changes})
