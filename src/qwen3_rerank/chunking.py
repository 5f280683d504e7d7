"""Long documents in chunk mode: cut each document into chunks, score them all in one go, keep the best.

The cutting itself (the boundary rule) lives in :meth:`qwen3_rerank.PromptBuilder.chunk_documents`, next to
the one prompt builder; this module holds the options, the bound on cost, and the max over chunks.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .errors import DocumentTooLongError, Qwen3RerankValueError
from .prompt import DocumentChunk, PromptBuilder

__all__ = ["LONG_DOCUMENT_MODES", "ChunkOptions", "ChunkPlan", "LongDocuments", "plan_chunks"]

LongDocuments = Literal["truncate", "chunk"]
LONG_DOCUMENT_MODES: tuple[str, ...] = ("truncate", "chunk")


def _count(value: Any, what: str, minimum: int, *, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        none = " or None" if optional else ""
        raise Qwen3RerankValueError(f"{what} must be an int >= {minimum}{none}, got {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class ChunkOptions:
    """How long documents are handled: ``long_documents`` and, in chunk mode, the chunks' size and bound."""

    long_documents: LongDocuments = "truncate"
    #: ids per chunk; None: all that fits beside the template, instruction and query under max_length.
    chunk_tokens: int | None = None
    #: ids two consecutive chunks share (about: cuts fall on word boundaries).
    chunk_overlap: int = 0
    #: most chunks per document (DocumentTooLongError beyond it); None: no limit.
    max_chunks: int | None = 64

    @classmethod
    def create(
        cls, long_documents: Any = "truncate", chunk_tokens: Any = None, chunk_overlap: Any = 0, max_chunks: Any = 64
    ) -> ChunkOptions:
        if long_documents not in LONG_DOCUMENT_MODES:
            raise Qwen3RerankValueError(f"long_documents must be 'truncate' or 'chunk', got {long_documents!r}")
        tokens = _count(chunk_tokens, "chunk_tokens", 8, optional=True)
        overlap = _count(chunk_overlap, "chunk_overlap", 0, optional=False)
        assert overlap is not None
        if tokens is not None and overlap >= tokens:
            raise Qwen3RerankValueError(
                f"chunk_overlap={overlap} must be smaller than chunk_tokens={tokens} (each chunk has to move "
                "forward); lower chunk_overlap."
            )
        return cls(long_documents, tokens, overlap, _count(max_chunks, "max_chunks", 1, optional=True))

    def replace(
        self, long_documents: Any = None, chunk_tokens: Any = None, chunk_overlap: Any = None, max_chunks: Any = None
    ) -> ChunkOptions:
        """These options with the ones given (not None) changed: how a call overrides its reranker's."""
        if long_documents is None and chunk_tokens is None and chunk_overlap is None and max_chunks is None:
            return self
        return ChunkOptions.create(
            self.long_documents if long_documents is None else long_documents,
            self.chunk_tokens if chunk_tokens is None else chunk_tokens,
            self.chunk_overlap if chunk_overlap is None else chunk_overlap,
            self.max_chunks if max_chunks is None else max_chunks,
        )

    @property
    def chunked(self) -> bool:
        return self.long_documents == "chunk"


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """Every chunk prompt of a call, flat (they go to the backend together), and whose chunk each is."""

    prompts: list[list[int]]
    chunks: list[list[DocumentChunk]]

    def finish(self, scores: Sequence[float]) -> list[tuple[DocumentChunk, ...]]:
        """The chunks of each document, in text order, with their scores."""
        flat = iter(scores)
        return [
            tuple(
                DocumentChunk(c.index, c.token_start, c.token_end, c.char_start, c.char_end, next(flat))
                for c in doc_chunks
            )
            for doc_chunks in self.chunks
        ]


def plan_chunks(builder: PromptBuilder, triples: Sequence[tuple[str, str, str]], options: ChunkOptions) -> ChunkPlan:
    """Cut the documents of (instruction, query, document) triples and build every chunk's prompt.

    Raises DocumentTooLongError, before anything is scored, when a document needs more than max_chunks.
    """
    sizes = [builder.chunk_budget(instruction, query, options.chunk_tokens) for instruction, query, _ in triples]
    cuts: list[list[Any]] = [[] for _ in triples]
    # Documents are cut in one batched tokenizer call per chunk size (normally one size per call).
    by_size: dict[int, list[int]] = {}
    for position, size in enumerate(sizes):
        by_size.setdefault(size, []).append(position)
    for size, positions in by_size.items():
        cut = builder.chunk_documents([triples[i][2] for i in positions], size, options.chunk_overlap)
        for position, doc_cuts in zip(positions, cut, strict=True):
            cuts[position] = doc_cuts
    if options.max_chunks is not None:
        for position, doc_cuts in enumerate(cuts):
            if len(doc_cuts) > options.max_chunks:
                raise DocumentTooLongError(
                    f"document {position} needs {len(doc_cuts)} chunks of {sizes[position]} tokens, more than "
                    f"max_chunks={options.max_chunks}. Raise max_chunks (or pass None for no limit), raise "
                    "chunk_tokens or max_length, or use long_documents='truncate' to score only its beginning."
                )
    prompts: list[list[int]] = []
    chunks: list[list[DocumentChunk]] = []
    for (instruction, query, _), doc_cuts in zip(triples, cuts, strict=True):
        prompts.extend(builder.chunk_prompts(instruction, query, doc_cuts))
        chunks.append(
            [DocumentChunk(i, c.token_start, c.token_end, c.char_start, c.char_end) for i, c in enumerate(doc_cuts)]
        )
    return ChunkPlan(prompts, chunks)
