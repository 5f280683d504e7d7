"""A LlamaIndex node postprocessor over [`qwen3_rerank.Reranker`][qwen3_rerank.Reranker].

Thin on purpose: it turns nodes into text, lets the core scorer build the prompts and score them, and
hands back the same nodes reordered. Scores are therefore exactly what ``Reranker.rank`` gives.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr, model_validator
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.callbacks.base import EventContext
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle

from qwen3_rerank import RankedDocument, Reranker
from qwen3_rerank.adapter_support import (
    RerankerAdapterFields,
    RerankerAdapterMixin,
    TopN,
    adapter_fields,
    chunk_metadata,
    given_reranker,
)

__all__ = ["CHUNK_KEY", "RETRIEVAL_SCORE_KEY", "Qwen3Rerank"]

dispatcher = get_dispatcher(__name__)

#: Metadata key that holds the retriever's score when ``keep_retrieval_score=True``.
RETRIEVAL_SCORE_KEY = "retrieval_score"
#: Metadata key that holds the winning chunk in ``long_documents="chunk"`` mode: its index, score, and token
#: and character spans in the text that was scored (``node.get_content(metadata_mode)``).
CHUNK_KEY = "qwen3_rerank_chunk"


class Qwen3Rerank(RerankerAdapterMixin, RerankerAdapterFields, BaseNodePostprocessor):
    """Reorders retrieved nodes by Qwen3-Reranker relevance (a probability in [0, 1]), best first.

    Give either a model (a Hub name or a local directory; ``backend``, ``engine_options``, ``max_length``,
    ``batch_size``, ``tokenizer`` and ``show_progress`` go to [`qwen3_rerank.Reranker`][qwen3_rerank.Reranker]), or an
    existing ``reranker=`` so several postprocessors share one engine. Postprocessors built from the same
    model and options share one vLLM engine anyway. ``device`` (SentenceTransformerRerank's argument, a
    str or ``torch.device``) needs ``backend="transformers"`` and becomes ``engine_options["device"]``
    (as its name, so ``to_json`` works).

    Each node is scored on ``node.get_content(metadata_mode)`` (default ``MetadataMode.EMBED``, the text
    the retriever saw). ``score_threshold`` keeps nodes scoring at least that much; ``top_n`` then keeps
    the first n (``None``: all; ``0``: none). The result is new ``NodeWithScore`` objects whose ``score`` is the
    relevance; equal scores keep their input order; the nodes passed in are never modified.

    The fields hold every setting of the reranker, so ``to_dict``/``from_dict``, ``to_json``/``from_json``,
    pickle, cloudpickle and ``deepcopy`` reopen the same reranker (sharing the live vLLM engine in the same
    process). ``model_copy()`` shares the reranker without owning it.

    ``long_documents="chunk"`` (with ``chunk_tokens``, ``chunk_overlap``, ``max_chunks``; None: the reranker's
    own) scores long nodes by their best chunk, and the returned nodes are copies whose
    ``metadata[CHUNK_KEY]`` says which chunk won (hidden from LLM and embedder).
    """

    # The other fields (model, score_threshold, instruction, the reranker's settings, the chunk options) are
    # RerankerAdapterFields', shared with the LangChain adapter.
    top_n: TopN = Field(default=2, description="How many nodes to keep, best first; None keeps all, 0 none.")
    keep_retrieval_score: bool = Field(
        default=False,
        description=f"Keep the retriever's score in metadata[{RETRIEVAL_SCORE_KEY!r}] (hidden from LLM and embedder).",
    )
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED, description="Which metadata goes into the text that is scored."
    )

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    _reranker: Reranker = PrivateAttr()
    _owns_reranker: bool = PrivateAttr(default=False)

    def __init__(
        self,
        model: str | None = None,
        *,
        reranker: Reranker | None = None,
        top_n: int | None = 2,
        score_threshold: float | None = None,
        keep_retrieval_score: bool = False,
        metadata_mode: MetadataMode = MetadataMode.EMBED,
        instruction: str | None = None,
        device: Any = None,
        callback_manager: CallbackManager | None = None,
        **options: Any,
    ) -> None:
        fields = adapter_fields(model, reranker, options, instruction, device)
        # Field validation runs here, before any engine starts; unknown options are pydantic's extra inputs.
        with given_reranker(reranker):
            # One mapping: the parent class's typed __init__ does not know this class's fields.
            super().__init__(
                **{
                    **fields,
                    "top_n": top_n,
                    "score_threshold": score_threshold,
                    "keep_retrieval_score": keep_retrieval_score,
                    "metadata_mode": metadata_mode,
                    "callback_manager": callback_manager or CallbackManager([]),
                    **options,
                }
            )

    @model_validator(mode="before")
    @classmethod
    def _without_class_name(cls, data: Any) -> Any:
        # model_dump() adds BaseComponent's "class_name"; from_dict drops it, model_validate must too.
        if isinstance(data, dict) and data.get("class_name") == cls.class_name():
            return {key: value for key, value in data.items() if key != "class_name"}
        return data

    @classmethod
    def class_name(cls) -> str:
        return "Qwen3Rerank"

    # -- one request, two transports ---------------------------------------------------------------

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query, texts = self._request(nodes, query_bundle)
        with self._rerank_events(nodes, query_bundle) as event:
            ranked = self._rank(query, texts, self.top_n, self.score_threshold)
            return self._finish(event, nodes, ranked)

    @dispatcher.span
    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query, texts = self._request(nodes, query_bundle)
        with self._rerank_events(nodes, query_bundle) as event:
            ranked = await self._arank(query, texts, self.top_n, self.score_threshold)
            return self._finish(event, nodes, ranked)

    def _request(self, nodes: Sequence[NodeWithScore], query_bundle: QueryBundle | None) -> tuple[str, list[str]]:
        if query_bundle is None:
            raise ValueError(
                "Qwen3Rerank needs the query to rerank against: call postprocess_nodes(nodes, query_str=...) "
                "or pass a QueryBundle (query engines pass it for you)."
            )
        texts = []
        for i, item in enumerate(nodes):
            if not isinstance(item, NodeWithScore):
                raise TypeError(
                    f"nodes[{i}] must be a NodeWithScore, got {type(item).__name__}; wrap a node as "
                    "NodeWithScore(node=node)."
                )
            # get_content works for every node type; NodeWithScore.text raises for Document and Node.
            texts.append(item.node.get_content(metadata_mode=self.metadata_mode))
        return query_bundle.query_str, texts

    @contextmanager
    def _rerank_events(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> Iterator[EventContext]:
        # ReRankStartEvent.top_n is an int: "keep all" is reported as the number of nodes.
        top_n = len(nodes) if self.top_n is None else self.top_n
        dispatcher.event(ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=top_n, model_name=self.model))
        payload: dict[str, Any] = {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model,
            EventPayload.QUERY_STR: query_bundle.query_str if query_bundle else None,
            EventPayload.TOP_K: top_n,
        }
        with self.callback_manager.event(CBEventType.RERANKING, payload=payload) as event:
            yield event

    def _finish(
        self, event: EventContext, nodes: Sequence[NodeWithScore], ranked: Sequence[RankedDocument]
    ) -> list[NodeWithScore]:
        reranked = [NodeWithScore(node=self._output_node(nodes[r.index], r), score=r.score) for r in ranked]
        event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked

    def _output_node(self, item: NodeWithScore, ranked: RankedDocument) -> BaseNode:
        added: dict[str, Any] = {}
        if self.keep_retrieval_score:
            added[RETRIEVAL_SCORE_KEY] = item.score
        chunk = chunk_metadata(ranked)
        if chunk is not None:
            added[CHUNK_KEY] = chunk
        if not added:
            return item.node
        node = item.node
        # A copy with its own metadata and key lists: the caller's node stays as it was, and the added keys
        # are listed as excluded so they never reach the text an LLM or an embedding model sees.
        embed_keys, llm_keys = list(node.excluded_embed_metadata_keys), list(node.excluded_llm_metadata_keys)
        for key in added:
            embed_keys, llm_keys = _with_key(embed_keys, key), _with_key(llm_keys, key)
        return node.model_copy(
            update={
                "metadata": {**node.metadata, **added},
                "excluded_embed_metadata_keys": embed_keys,
                "excluded_llm_metadata_keys": llm_keys,
            }
        )


def _with_key(keys: list[str], key: str) -> list[str]:
    return list(keys) if key in keys else [*keys, key]
