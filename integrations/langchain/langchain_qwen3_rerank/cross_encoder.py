"""Qwen3-Reranker as a LangChain ``BaseCrossEncoder``, for ``CrossEncoderReranker`` pipelines.

``BaseCrossEncoder`` lives in ``langchain_core.cross_encoders``; ``CrossEncoderReranker`` lives in
``langchain_classic.retrievers.document_compressors`` (langchain-classic, formerly ``langchain``), which
re-exports the same ``BaseCrossEncoder`` class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.cross_encoders import BaseCrossEncoder

from qwen3_rerank import Reranker
from qwen3_rerank.adapter_support import adapter_fields, cross_encoder_model_kwargs

__all__ = ["Qwen3CrossEncoder"]


class Qwen3CrossEncoder(BaseCrossEncoder):
    """Scores (query, document) pairs with Qwen3-Reranker: one relevance in [0, 1] per pair, in order.

    Give either a model (extra keyword arguments go to [`qwen3_rerank.Reranker`][qwen3_rerank.Reranker]) or an existing
    ``reranker=``; ``CrossEncoderReranker(model=Qwen3CrossEncoder(...), top_n=3)`` then reranks.
    ``device`` (or HuggingFaceCrossEncoder's ``model_kwargs={"device": ...}``) needs
    ``backend="transformers"`` and becomes ``engine_options["device"]``.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        reranker: Reranker | None = None,
        instruction: str | None = None,
        device: Any = None,
        model_kwargs: Mapping[str, Any] | None = None,
        **reranker_options: Any,
    ) -> None:
        hf_device = cross_encoder_model_kwargs(model_kwargs).get("device")
        if hf_device is not None and device is not None and hf_device != device:
            raise ValueError(f"device={device!r} contradicts model_kwargs device={hf_device!r}; pass one")
        fields = adapter_fields(model, reranker, reranker_options, instruction, device or hf_device)
        if reranker_options:
            raise TypeError(f"Qwen3CrossEncoder got unexpected keyword arguments {sorted(reranker_options)}")
        self.model: str = fields.pop("model")
        self.instruction: str | None = fields.pop("instruction")
        self._settings = fields
        self._owns_reranker = reranker is None
        self._reranker = Reranker(self.model, **fields) if reranker is None else reranker

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

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle, cloudpickle and deepcopy keep the settings and reopen the reranker (see Reranker).
        self._reranker.__reduce__()  # a clear TypeError for a reranker over a backend object
        return (_rebuild, (self.model, self.instruction, self._settings))

    def __repr__(self) -> str:
        return f"Qwen3CrossEncoder(model={self.model!r}, instruction={self.instruction!r})"


def _rebuild(model: str, instruction: str | None, settings: dict[str, Any]) -> Qwen3CrossEncoder:
    return Qwen3CrossEncoder(model, instruction=instruction, **settings)
