"""What one call of the [`Reranker`][qwen3_rerank.Reranker] scores, and how its scores become the answer.

A [`CallPlanner`][qwen3_rerank.calls.CallPlanner] checks a call's arguments and builds its prompts (chunk mode included)
into a [`Call`][qwen3_rerank.calls.Call]: the prompts, and ``finish``, which turns their scores (in prompt order) into
what the call returns. The Reranker only scores the prompts, sync or async.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from .chunking import ChunkOptions, ChunkPlan, plan_chunks
from .prompt import DocumentChunk, PromptBuilder
from .results import RankedDocument, order_by_score
from .validation import Query, check_documents, check_pairs, check_query, check_text, check_threshold, check_top_n

__all__ = ["Call", "CallPlanner"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """What one call scores, and how the scores of those prompts (in their order) become its answer."""

    prompts: list[list[int]]
    finish: Callable[[list[float]], T]


def _best_scores(plan: ChunkPlan) -> Call[list[float]]:
    return Call(plan.prompts, lambda scores: [_best(chunks).score for chunks in plan.finish(scores)])  # type: ignore[misc]


def _best(chunks: tuple[DocumentChunk, ...]) -> DocumentChunk:
    """The first chunk with the largest score (max semantics; ties go to the earlier chunk)."""
    return max(chunks, key=lambda chunk: chunk.score)  # type: ignore[arg-type,return-value]


def _ranked_chunks(
    docs: list[str],
    chunked: list[tuple[DocumentChunk, ...]],
    top_n: int | None,
    threshold: float | None,
    return_chunks: bool,
) -> tuple[RankedDocument, ...]:
    best = [_best(chunks) for chunks in chunked]
    ranked = order_by_score(docs, [b.score for b in best], top_n=top_n, threshold=threshold)  # type: ignore[misc]
    return tuple(
        dataclasses.replace(r, best_chunk=best[r.index], chunks=chunked[r.index] if return_chunks else None)
        for r in ranked
    )


@dataclasses.dataclass(frozen=True, slots=True)
class CallPlanner:
    """Plans the calls of a reranker: its prompt builder and the instruction a call uses when it gives none."""

    prompts: PromptBuilder
    instruction: str

    def _query_prompts(
        self, query: Query, documents: Iterable[str], instruction: str | None
    ) -> tuple[list[str], list[list[int]]]:
        # The query is checked before the documents are read: a generator is not consumed for nothing.
        instruction_text, query_text = check_query(query, instruction, self.instruction)
        docs = check_documents(documents)
        return docs, self.prompts.build(instruction_text, query_text, docs)

    def _pair_prompts(self, pairs: Iterable[tuple[Query, str]], instruction: str | None) -> list[list[int]]:
        return self.prompts.build_triples(self._triples(pairs, instruction))

    def _triples(self, pairs: Iterable[tuple[Query, str]], instruction: str | None) -> list[tuple[str, str, str]]:
        default = self.instruction if instruction is None else check_text(instruction, "instruction")
        return check_pairs(pairs, default)

    def _query_triples(
        self, query: Query, documents: Iterable[str], instruction: str | None
    ) -> tuple[list[str], list[tuple[str, str, str]]]:
        instruction_text, query_text = check_query(query, instruction, self.instruction)
        docs = check_documents(documents)
        return docs, [(instruction_text, query_text, doc) for doc in docs]

    def score(
        self, query: Query, documents: Iterable[str], instruction: str | None, options: ChunkOptions
    ) -> Call[list[float]]:
        if options.chunked:
            _, triples = self._query_triples(query, documents, instruction)
            return _best_scores(plan_chunks(self.prompts, triples, options))
        _, prompts = self._query_prompts(query, documents, instruction)
        return Call(prompts, list)

    def pairs(
        self, pairs: Iterable[tuple[Query, str]], instruction: str | None, options: ChunkOptions
    ) -> Call[list[float]]:
        if options.chunked:
            return _best_scores(plan_chunks(self.prompts, self._triples(pairs, instruction), options))
        return Call(self._pair_prompts(pairs, instruction), list)

    def chunks(
        self, query: Query, documents: Iterable[str], instruction: str | None, options: ChunkOptions
    ) -> Call[list[tuple[DocumentChunk, ...]]]:
        _, triples = self._query_triples(query, documents, instruction)
        plan = plan_chunks(self.prompts, triples, options)
        return Call(plan.prompts, plan.finish)

    def rank(
        self,
        query: Query,
        documents: Iterable[str],
        top_n: int | None,
        threshold: float | None,
        instruction: str | None,
        options: ChunkOptions,
        return_chunks: bool,
    ) -> Call[tuple[RankedDocument, ...]]:
        top_n, threshold = check_top_n(top_n), check_threshold(threshold)
        if options.chunked:
            docs, triples = self._query_triples(query, documents, instruction)
            plan = plan_chunks(self.prompts, triples, options)
            return Call(
                plan.prompts, lambda scores: _ranked_chunks(docs, plan.finish(scores), top_n, threshold, return_chunks)
            )
        docs, prompts = self._query_prompts(query, documents, instruction)
        return Call(prompts, lambda scores: order_by_score(docs, scores, top_n=top_n, threshold=threshold))
