"""qwen3-rerank: exact, fast Qwen3-Reranker scoring on vLLM, for LlamaIndex and LangChain pipelines.

What is public: the names in ``__all__`` (import them from ``qwen3_rerank``) and the public modules
``qwen3_rerank.errors``, ``qwen3_rerank.checkpoints``, ``qwen3_rerank.adapter_support``,
``qwen3_rerank.backends.registry``, ``qwen3_rerank.backends.vllm_backend``,
``qwen3_rerank.backends.transformers_backend``, ``qwen3_rerank.backends.packed_backend``,
``qwen3_rerank.backends.server_backend``, ``qwen3_rerank.evaluation`` and ``qwen3_rerank.files``, all
documented on the Python API page (docs/api.md). Every other module is internal and may change in any
release, even where its name has no leading underscore. tests/unit/test_init_public_api.py pins both lists.
"""

from __future__ import annotations

from .backends.base import ScoringBackend
from .backends.registry import BACKEND_NAMES
from .chunking import ChunkOptions
from .errors import (
    BackendNotInstalledError,
    DocumentTooLongError,
    EngineError,
    ModelNotFoundError,
    NotAQwen3RerankerError,
    PromptTooLongError,
    Qwen3RerankError,
    Qwen3RerankFileNotFoundError,
    Qwen3RerankTypeError,
    Qwen3RerankValueError,
    ServerError,
)
from .prompt import DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH, DocumentChunk, PromptBuilder, canonical_prompt
from .relevance import NO_TOKEN_ID, YES_TOKEN_ID, relevance_from_logits
from .reranker import Reranker
from .results import RankedDocument
from .settings import DEFAULT_MODEL, RerankerSettings

__version__ = "0.1.0"

__all__ = [
    "BACKEND_NAMES",
    "ChunkOptions",
    "RerankerSettings",
    "ScoringBackend",
    "BackendNotInstalledError",
    "DEFAULT_INSTRUCTION",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_MODEL",
    "DocumentChunk",
    "DocumentTooLongError",
    "EngineError",
    "ModelNotFoundError",
    "NO_TOKEN_ID",
    "NotAQwen3RerankerError",
    "PromptBuilder",
    "PromptTooLongError",
    "Qwen3RerankError",
    "Qwen3RerankFileNotFoundError",
    "Qwen3RerankTypeError",
    "Qwen3RerankValueError",
    "RankedDocument",
    "Reranker",
    "ServerError",
    "YES_TOKEN_ID",
    "__version__",
    "canonical_prompt",
    "relevance_from_logits",
]
