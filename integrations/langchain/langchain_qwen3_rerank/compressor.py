"""A LangChain document compressor over [`qwen3_rerank.Reranker`][qwen3_rerank.Reranker].

Thin on purpose: documents become text, the core scorer builds the prompts and scores them, and the
documents come back reordered, as copies carrying their score. Scores are exactly ``Reranker.rank``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml
from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, PrivateAttr

from qwen3_rerank import RankedDocument, Reranker
from qwen3_rerank.adapter_support import (
    RerankerAdapterFields,
    RerankerAdapterMixin,
    adapter_fields,
    chunk_metadata,
    coerce_top_n,
    first_tokens,
    given_reranker,
)

__all__ = ["CHUNK_KEY", "RELEVANCE_SCORE_KEY", "Qwen3Rerank"]

#: Metadata key of the relevance score on the documents the compressor returns.
RELEVANCE_SCORE_KEY = "relevance_score"
#: Metadata key of the winning chunk in ``long_documents="chunk"`` mode: its index, score, and token and
#: character spans in ``page_content``.
CHUNK_KEY = "qwen3_rerank_chunk"


class Qwen3Rerank(RerankerAdapterMixin, RerankerAdapterFields, BaseDocumentCompressor):
    """Reorders documents by Qwen3-Reranker relevance (a probability in [0, 1]), best first.

    Give either a model (a Hub name or a local directory; ``backend``, ``engine_options``, ``max_length``,
    ``batch_size``, ``tokenizer`` and ``show_progress`` go to [`qwen3_rerank.Reranker`][qwen3_rerank.Reranker]), or an
    existing ``reranker=`` so several compressors share one engine. Compressors built from the same
    model and options share one vLLM engine anyway.

    ``compress_documents`` keeps the documents scoring at least ``score_threshold``, then the first
    ``top_n`` (``None``: all; ``0``: none). Each result is ``doc.model_copy()`` with
    ``metadata["relevance_score"]`` set, so ``Document.id`` and the other metadata survive and the
    documents passed in are not modified. Equal scores keep their input order.

    The fields hold every setting of the reranker, so ``model_validate(c.model_dump())``, pickle,
    cloudpickle (Ray) and ``deepcopy`` reopen the same reranker (sharing the live vLLM engine in the same
    process). ``model_copy()`` shares the reranker without owning it.

    ``long_documents="chunk"`` (with ``chunk_tokens``, ``chunk_overlap``, ``max_chunks``; None: the reranker's
    own) scores long documents by their best chunk; the copies then also carry ``metadata[CHUNK_KEY]``.

    ``device`` (a str or ``torch.device``) needs ``backend="transformers"`` and becomes
    ``engine_options["device"]``; vLLM uses its GPUs.
    """

    # The fields (model, top_n=3, score_threshold, instruction, the reranker's settings, the chunk options)
    # are RerankerAdapterFields', shared with the LlamaIndex adapter.
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", validate_assignment=True)

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
        device: Any = None,
        **options: Any,
    ) -> None:
        fields = adapter_fields(model, reranker, options, instruction, device)
        # Field validation runs here, before any engine starts; unknown options are pydantic's extra inputs.
        with given_reranker(reranker):
            # One mapping: the parent class's typed __init__ does not know this class's fields.
            super().__init__(**{**fields, "top_n": top_n, "score_threshold": score_threshold, **options})

    # -- BaseDocumentCompressor ---------------------------------------------------------------------

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> list[Document]:
        """The documents best first, cut by ``score_threshold`` and ``top_n``, as scored copies.

        ``callbacks`` is accepted for the interface; the retriever run that calls this reports the events.
        """
        docs, texts = _request(documents, allow_text=False)
        ranked = self._rank(query, texts, self.top_n, self.score_threshold)
        return [_scored(docs[r.index], r) for r in ranked]

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> list[Document]:
        """Async [`compress_documents()`][langchain_qwen3_rerank.compressor.Qwen3Rerank.compress_documents]; the engine
        works off the event loop."""
        docs, texts = _request(documents, allow_text=False)
        ranked = await self._arank(query, texts, self.top_n, self.score_threshold)
        return [_scored(docs[r.index], r) for r in ranked]

    # -- the rerank() of Cohere's LangChain reranker (langchain_cohere.CohereRerank) ----------------

    def rerank(
        self,
        documents: Iterable[str | Document | Mapping[str, Any]],
        query: str,
        *,
        rank_fields: Sequence[str] | None = None,
        model: str | None = None,
        top_n: int | None = -1,
        max_tokens_per_doc: int | None = None,
    ) -> list[dict[str, Any]]:
        """Cohere's ``rerank``: ``[{"index", "relevance_score", "document"}]`` best first.

        ``top_n`` ``None`` returns every document; ``0`` or below (the default ``-1``) uses the compressor's
        ``top_n``, as Cohere does. ``index`` is the position in ``documents`` (any iterable, read once);
        ``document`` is the string or dict given, or a scored copy of the ``Document`` given. A dict is
        scored on the YAML of its ``rank_fields`` (all keys if None), as Cohere does; a dict holding none
        of the ``rank_fields`` is an error. ``max_tokens_per_doc`` keeps about the first that many tokens
        of each document (Cohere's truncation; None: only the reranker's ``max_length`` applies).
        ``score_threshold`` does not apply here. ``model`` may only name this compressor's model.
        """
        top_n = self._rerank_request(documents, query, model, top_n)
        docs, texts = _request(documents, allow_text=True, rank_fields=rank_fields)
        texts = self._cut(texts, max_tokens_per_doc)
        ranked = self._rank(query, texts, top_n)
        return _rows(docs, ranked)

    async def arerank(
        self,
        documents: Iterable[str | Document | Mapping[str, Any]],
        query: str,
        *,
        rank_fields: Sequence[str] | None = None,
        model: str | None = None,
        top_n: int | None = -1,
        max_tokens_per_doc: int | None = None,
    ) -> list[dict[str, Any]]:
        """Async [`rerank()`][langchain_qwen3_rerank.compressor.Qwen3Rerank.rerank]."""
        top_n = self._rerank_request(documents, query, model, top_n)
        docs, texts = _request(documents, allow_text=True, rank_fields=rank_fields)
        texts = self._cut(texts, max_tokens_per_doc)
        ranked = await self._arank(query, texts, top_n)
        return _rows(docs, ranked)

    def _cut(self, texts: list[str], max_tokens_per_doc: int | None) -> list[str]:
        if max_tokens_per_doc is None:
            return texts
        return first_tokens(self.reranker, texts, max_tokens_per_doc, "max_tokens_per_doc")

    def _rerank_request(self, documents: Any, query: Any, model: str | None, top_n: Any) -> int | None:
        if isinstance(documents, str) and not isinstance(query, str):
            raise TypeError(
                "rerank() takes (documents, query), the order of Cohere's rerankers; the query came first. "
                "Call rerank(documents, query) (or rerank(documents=..., query=...))."
            )
        if model is not None and model != self.model:
            raise ValueError(
                f"model={model!r}: this compressor scores with {self.model!r} only; make another "
                f"Qwen3Rerank({model!r}) for another model."
            )
        # Cohere: a top_n that is neither None nor positive means the compressor's own top_n.
        if top_n is not None and not isinstance(top_n, bool) and isinstance(top_n, int) and top_n <= 0:
            return self.top_n
        return coerce_top_n(top_n)


def _request(
    documents: Iterable[Any], *, allow_text: bool, rank_fields: Sequence[str] | None = None
) -> tuple[list[Any], list[str]]:
    if isinstance(documents, str | bytes | Document | Mapping) or not isinstance(documents, Iterable):
        raise TypeError(f"documents must be a list of Document, got {type(documents).__name__}; wrap one in a list")
    docs = list(documents)  # a generator is read once, in order; the rows' index is a position in it
    texts = []
    for i, doc in enumerate(docs):
        if isinstance(doc, Document):
            texts.append(doc.page_content)
        elif allow_text and isinstance(doc, str):
            texts.append(doc)
        elif allow_text and isinstance(doc, Mapping):
            texts.append(_dict_text(doc, rank_fields, i))
        else:
            accepted = "a Document, a str or a dict" if allow_text else "a Document"
            raise TypeError(
                f"documents[{i}] must be {accepted}, got {type(doc).__name__}: {doc!r:.80}; "
                "wrap text as Document(page_content=text)."
            )
    return docs, texts


def _dict_text(doc: Mapping[str, Any], rank_fields: Sequence[str] | None, i: int) -> str:
    # Cohere's rule: the YAML of the dict, keeping only rank_fields (in their order) when given. A dict with
    # none of them would be scored as the text "{}": a misspelt field, so it is an error instead.
    if isinstance(rank_fields, str):
        raise TypeError(f"rank_fields must be a list of keys, got the str {rank_fields!r}; write [{rank_fields!r}]")
    chosen = dict(doc) if not rank_fields else {key: doc[key] for key in rank_fields if key in doc}
    if rank_fields and not chosen:
        raise ValueError(
            f"documents[{i}] has none of rank_fields {list(rank_fields)}; its keys are {sorted(map(str, doc))}. "
            "Name keys the dicts have, or pass rank_fields=None to score every key."
        )
    return yaml.dump(chosen, sort_keys=False)


def _scored(doc: Document, ranked: RankedDocument) -> Document:
    # model_copy keeps id and every other field; the metadata dict is new, so the input stays untouched.
    added: dict[str, Any] = {RELEVANCE_SCORE_KEY: ranked.score}
    chunk = chunk_metadata(ranked)
    if chunk is not None:
        added[CHUNK_KEY] = chunk
    return doc.model_copy(update={"metadata": {**doc.metadata, **added}})


def _rows(docs: list[Any], ranked: Sequence[RankedDocument]) -> list[dict[str, Any]]:
    rows = []
    for r in ranked:
        doc = docs[r.index]
        rows.append(
            {
                "index": r.index,
                "relevance_score": r.score,
                "document": _scored(doc, r) if isinstance(doc, Document) else doc,
            }
        )
    return rows
