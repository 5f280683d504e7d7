"""The Ray Data actor of a batch job: one [`Reranker`][qwen3_rerank.Reranker] (one engine) per actor."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["ShardScorer", "forwarded_environment"]

# Engine settings a driver's environment carries to actors on other nodes (Ray starts them afresh).
_FORWARDED_PREFIXES = ("VLLM_", "HF_", "NCCL_", "TOKENIZERS_PARALLELISM")


def forwarded_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES)}


class ShardScorer:
    """Scores one block of pairs (normally one shard) and returns ids with scores, or the error per row.

    A failure (a prompt too long, an engine error) marks that block's rows failed instead of stopping
    the job, so the other shards still finish and a rerun retries only the failed ones.
    """

    def __init__(
        self,
        model: str,
        backend: str,
        engine_options: Mapping[str, Any] | None,
        instruction: str,
        max_length: int,
        batch_size: int,
        environment: Mapping[str, str],
        chunking: Mapping[str, Any] | None = None,
    ) -> None:
        for key, value in environment.items():
            os.environ.setdefault(key, value)
        from ..reranker import Reranker

        self.reranker = Reranker(
            model,
            backend=backend,  # type: ignore[arg-type]
            instruction=instruction,
            max_length=max_length,
            batch_size=batch_size,
            engine_options=engine_options,
            **dict(chunking or {}),
        )

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        rows = batch.num_rows
        queries = batch.column("query").to_pylist()
        documents = batch.column("document").to_pylist()
        if "instruction" in batch.column_names:
            instructions = batch.column("instruction").to_pylist()
            rows_in = zip(instructions, queries, documents, strict=True)
            # An empty or missing instruction means the job's, as for the local runner (CSV has no null).
            pairs = [((i, q) if i else q, d) for i, q, d in rows_in]
        else:
            pairs = list(zip(queries, documents, strict=True))
        scores: list[float | None]
        try:
            scores = list(self.reranker.score_pairs(pairs))
            errors: list[str | None] = [None] * rows
        except Exception as exc:  # reported per shard in the job summary
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:2000]
            scores, errors = [None] * rows, [message] * rows
        return pa.table(
            {
                "_shard": batch.column("_shard"),
                "_row": batch.column("_row"),
                "query_id": batch.column("query_id"),
                "doc_id": batch.column("doc_id"),
                "score": pa.array(scores, pa.float64()),
                "_error": pa.array(errors, pa.string()),
            }
        )

    def __del__(self) -> None:
        reranker = getattr(self, "reranker", None)
        if reranker is not None:
            reranker.close()
