"""Qwen3-Reranker as a LangChain ``BaseCrossEncoder``, for ``CrossEncoderReranker`` pipelines.

``BaseCrossEncoder`` lives in ``langchain_core.cross_encoders``; ``CrossEncoderReranker`` lives in
``langchain_classic.retrievers.document_compressors`` (langchain-classic, formerly ``langchain``), which
re-exports the same ``BaseCrossEncoder`` class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.cross_encoders import BaseCrossEncoder

from qwen3_rerank import Reranker
from qwen3_rerank.adapter_support import chosen_model

__all__ = ["Qwen3CrossEncoder"]


class Qwen3CrossEncoder(BaseCrossEncoder):
    """Scores (query, document) pairs with Qwen3-Reranker: one relevance in [0, 1] per pair, in order.

    Give either a model (extra keyword arguments go to :class:`qwen3_rerank.Reranker`) or an existing
    ``reranker=``; ``CrossEncoderReranker(model=Qwen3CrossEncoder(...), top_n=3)`` then reranks.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        reranker: Reranker | None = None,
        instruction: str | None = None,
        **reranker_options: Any,
    ) -> None:
        self.model = chosen_model(model, reranker, reranker_options)
        self.instruction = instruction
        self._owns_reranker = reranker is None
        self._reranker = Reranker(self.model, **reranker_options) if reranker is None else reranker

    @property
    def reranker(self) -> Reranker:
        return self._reranker

    def score(self, text_pairs: Sequence[tuple[str, str]]) -> list[float]:
        return self._reranker.score_pairs(text_pairs, instruction=self.instruction)

    async def ascore(self, text_pairs: Sequence[tuple[str, str]]) -> list[float]:
        return await self._reranker.ascore_pairs(text_pairs, instruction=self.instruction)

    def close(self) -> None:
        """Release the engine if this cross-encoder created its reranker; a passed-in one stays open."""
        if self._owns_reranker:
            self._reranker.close()

    def __repr__(self) -> str:
        return f"Qwen3CrossEncoder(model={self.model!r}, instruction={self.instruction!r})"
