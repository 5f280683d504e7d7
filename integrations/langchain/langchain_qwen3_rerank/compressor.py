"""A LangChain document compressor over :class:`qwen3_rerank.Reranker`.

Thin on purpose: documents become text, the core scorer builds the prompts and scores them, and the
documents come back reordered, as copies carrying their score. Scores are exactly ``Reranker.rank``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from qwen3_rerank import DEFAULT_MODEL, RankedDocument, Reranker
from qwen3_rerank.adapter_support import chosen_model
from qwen3_rerank.chunking import ChunkOptions
from qwen3_rerank.validation import check_threshold, check_top_n

__all__ = ["CHUNK_KEY", "RELEVANCE_SCORE_KEY", "Qwen3Rerank"]

#: Metadata key of the relevance score on the documents the compressor returns.
RELEVANCE_SCORE_KEY = "relevance_score"
#: Metadata key of the winning chunk in ``long_documents="chunk"`` mode: its index, score, and token and
#: character spans in ``page_content``.
CHUNK_KEY = "qwen3_rerank_chunk"


class Qwen3Rerank(BaseDocumentCompressor):
    """Reorders documents by Qwen3-Reranker relevance (a probability in [0, 1]), best first.

    Give either a model (a Hub name or a local directory; extra keyword arguments such as ``backend``,
    ``engine_options``, ``max_length`` or ``batch_size`` go to :class:`qwen3_rerank.Reranker`), or an
    existing ``reranker=`` so several compressors share one engine. Compressors built from the same
    model and options share one vLLM engine anyway.

    ``compress_documents`` keeps the documents scoring at least ``score_threshold``, then the first
    ``top_n`` (``None``: all). Each result is ``doc.model_copy()`` with ``metadata["relevance_score"]``
    set, so ``Document.id`` and the other metadata survive and the documents passed in are not modified.
    Equal scores keep their input order.

    ``long_documents="chunk"`` (with ``chunk_tokens``, ``chunk_overlap``, ``max_chunks``; None: the reranker's
    own) scores long documents by their best chunk; the copies then also carry ``metadata[CHUNK_KEY]``.
    """

    model: str = Field(default=DEFAULT_MODEL, description="Qwen3-Reranker model (Hub name or local directory).")
    top_n: int | None = Field(default=3, description="How many documents to keep, best first; None keeps all.")
    score_threshold: float | None = Field(
        default=None, description="Drop documents whose relevance is below this value (in [0, 1]); None keeps all."
    )
    instruction: str | None = Field(
        default=None, description="Task instruction for the model; None uses the reranker's default."
    )

    long_documents: str | None = Field(
        default=None, description="'truncate' or 'chunk' (long documents score their best chunk); None: the reranker's."
    )
    chunk_tokens: int | None = Field(default=None, description="Tokens per chunk in chunk mode; None: the reranker's.")
    chunk_overlap: int | None = Field(default=None, description="Tokens chunks share; None: the reranker's.")
    max_chunks: int | None = Field(default=None, description="Most chunks per document; None: the reranker's.")

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    _reranker: Reranker = PrivateAttr()
    _owns_reranker: bool = PrivateAttr(default=False)

    def __init__(
        self,
        model: str | None = None,
        *,
        reranker: Reranker | None = None,
        top_n: int | None = 3,
        score_threshold: float | None = None,
        instruction: str | None = None,
        long_documents: str | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        max_chunks: int | None = None,
        **reranker_options: Any,
    ) -> None:
        # Field validation runs here, before any engine starts.
        super().__init__(
            model=chosen_model(model, reranker, reranker_options),
            top_n=top_n,
            score_threshold=score_threshold,
            instruction=instruction,
            long_documents=long_documents,
            chunk_tokens=chunk_tokens,
            chunk_overlap=chunk_overlap,
            max_chunks=max_chunks,
        )
        # Checked now, like the other fields, not at the first query.
        ChunkOptions.create().replace(long_documents, chunk_tokens, chunk_overlap, max_chunks)
        self._owns_reranker = reranker is None
        self._reranker = Reranker(self.model, **reranker_options) if reranker is None else reranker

    @field_validator("top_n", mode="before")
    @classmethod
    def _check_top_n(cls, value: Any) -> int | None:
        return check_top_n(value)

    @field_validator("score_threshold", mode="before")
    @classmethod
    def _check_threshold(cls, value: Any) -> float | None:
        return check_threshold(value)

    @property
    def reranker(self) -> Reranker:
        """The core scorer this compressor calls (possibly shared with others)."""
        return self._reranker

    def close(self) -> None:
        """Release the engine if this compressor created its reranker; a passed-in one stays open."""
        if self._owns_reranker:
            self._reranker.close()

    # -- BaseDocumentCompressor ---------------------------------------------------------------------

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> list[Document]:
        """The documents best first, cut by ``score_threshold`` and ``top_n``, as scored copies.

        ``callbacks`` is accepted for the interface; the retriever run that calls this reports the events.
        """
        docs, texts = _request(documents, allow_text=False)
        ranked = self._reranker.rank(
            query, texts, self.top_n, self.score_threshold, instruction=self.instruction, **self._chunking()
        )
        return [_scored(docs[r.index], r) for r in ranked]

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> list[Document]:
        """Async :meth:`compress_documents`; the engine works off the event loop."""
        docs, texts = _request(documents, allow_text=False)
        ranked = await self._reranker.arank(
            query, texts, self.top_n, self.score_threshold, instruction=self.instruction, **self._chunking()
        )
        return [_scored(docs[r.index], r) for r in ranked]

    def _chunking(self) -> dict[str, Any]:
        return {"long_documents": self.long_documents, "chunk_tokens": self.chunk_tokens,
                "chunk_overlap": self.chunk_overlap, "max_chunks": self.max_chunks}

    # -- the rerank API of Cohere's and NVIDIA's LangChain rerankers --------------------------------

    def rerank(
        self, query: str, documents: Sequence[str | Document], top_n: int | None = None
    ) -> list[dict[str, Any]]:
        """Every document (or the best ``top_n``) as ``{"index", "relevance_score", "document"}``, best first.

        ``index`` is the position in ``documents``; ``document`` is the string given, or a scored copy of
        the ``Document`` given. ``score_threshold`` and the compressor's ``top_n`` do not apply here.
        """
        docs, texts = _request(documents, allow_text=True)
        ranked = self._reranker.rank(query, texts, top_n, instruction=self.instruction, **self._chunking())
        return _rows(docs, ranked)

    async def arerank(
        self, query: str, documents: Sequence[str | Document], top_n: int | None = None
    ) -> list[dict[str, Any]]:
        """Async :meth:`rerank`."""
        docs, texts = _request(documents, allow_text=True)
        ranked = await self._reranker.arank(query, texts, top_n, instruction=self.instruction, **self._chunking())
        return _rows(docs, ranked)


def _request(documents: Sequence[Any], *, allow_text: bool) -> tuple[list[Any], list[str]]:
    if isinstance(documents, str | bytes | Document) or not isinstance(documents, Sequence):
        raise TypeError(f"documents must be a list of Document, got {type(documents).__name__}; wrap one in a list")
    docs = list(documents)
    texts = []
    for i, doc in enumerate(docs):
        if isinstance(doc, Document):
            texts.append(doc.page_content)
        elif allow_text and isinstance(doc, str):
            texts.append(doc)
        else:
            accepted = "a Document or a str" if allow_text else "a Document"
            raise TypeError(
                f"documents[{i}] must be {accepted}, got {type(doc).__name__}: {doc!r:.80}; "
                "wrap text as Document(page_content=text)."
            )
    return docs, texts


def _scored(doc: Document, ranked: RankedDocument) -> Document:
    # model_copy keeps id and every other field; the metadata dict is new, so the input stays untouched.
    added: dict[str, Any] = {RELEVANCE_SCORE_KEY: ranked.score}
    if ranked.best_chunk is not None:
        chunk = ranked.best_chunk
        added[CHUNK_KEY] = {"index": chunk.index, "score": chunk.score, "token_start": chunk.token_start,
                            "token_end": chunk.token_end, "char_start": chunk.char_start, "char_end": chunk.char_end}
    return doc.model_copy(update={"metadata": {**doc.metadata, **added}})


def _rows(docs: list[str | Document], ranked: Sequence[RankedDocument]) -> list[dict[str, Any]]:
    rows = []
    for r in ranked:
        doc = docs[r.index]
        rows.append({
            "index": r.index,
            "relevance_score": r.score,
            "document": _scored(doc, r) if isinstance(doc, Document) else doc,
        })
    return rows
