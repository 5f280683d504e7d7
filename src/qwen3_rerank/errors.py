"""Exceptions raised by qwen3-rerank. Every message says what was wrong and how to fix it."""

from __future__ import annotations

__all__ = [
    "BackendNotInstalledError",
    "DocumentTooLongError",
    "EngineError",
    "ModelNotFoundError",
    "NotAQwen3RerankerError",
    "PromptTooLongError",
    "Qwen3RerankError",
    "ServerError",
]


class Qwen3RerankError(Exception):
    """Base class of every error qwen3-rerank raises on purpose."""


class PromptTooLongError(Qwen3RerankError, ValueError):
    """The template, instruction and query alone do not fit in ``max_length`` tokens."""


class DocumentTooLongError(Qwen3RerankError, ValueError):
    """In ``long_documents="chunk"`` mode, a document needs more than ``max_chunks`` chunks."""


class ModelNotFoundError(Qwen3RerankError, FileNotFoundError):
    """The model (or its tokenizer) is neither a local directory nor reachable on the Hub."""


class NotAQwen3RerankerError(Qwen3RerankError, ValueError):
    """The checkpoint or tokenizer is not a Qwen3-Reranker (wrong vocabulary or architecture)."""


class BackendNotInstalledError(Qwen3RerankError, ImportError):
    """The backend asked for needs a package that is not installed; the message names the extra."""


class EngineError(Qwen3RerankError, RuntimeError):
    """The inference engine failed; the reranker stays usable and the message says what happened."""


class ServerError(EngineError):
    """A vLLM server could not score: unreachable, refused the request, or answered wrongly.

    ``urls`` names the server(s) involved.
    """

    def __init__(self, message: str, urls: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.urls = urls
