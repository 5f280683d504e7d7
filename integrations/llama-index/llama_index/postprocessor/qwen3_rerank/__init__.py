"""Qwen3-Reranker as a LlamaIndex node postprocessor (exact scores from qwen3-rerank)."""

from llama_index.postprocessor.qwen3_rerank.base import CHUNK_KEY, RETRIEVAL_SCORE_KEY, Qwen3Rerank

__all__ = ["CHUNK_KEY", "RETRIEVAL_SCORE_KEY", "Qwen3Rerank"]
