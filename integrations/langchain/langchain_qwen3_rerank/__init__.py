"""Qwen3-Reranker for LangChain: a document compressor and a cross-encoder (exact scores from qwen3-rerank)."""

from .compressor import CHUNK_KEY, RELEVANCE_SCORE_KEY, Qwen3Rerank
from .cross_encoder import Qwen3CrossEncoder

__all__ = ["CHUNK_KEY", "RELEVANCE_SCORE_KEY", "Qwen3CrossEncoder", "Qwen3Rerank"]
