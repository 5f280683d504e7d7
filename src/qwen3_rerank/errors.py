"""Exceptions raised by qwen3-rerank. Every message says what was wrong and how to fix it."""

from __future__ import annotations

__all__ = [
    "BackendNotInstalledError",
    "EngineError",
    "ModelNotFoundError",
    "NotAQwen3RerankerError",
    "PromptTooLongError",
    "Qwen3RerankError",
    "Qwen3RerankFileNotFoundError",
    "Qwen3RerankTypeError",
    "Qwen3RerankValueError",
    "ServerError",
]


class Qwen3RerankError(Exception):
    """Base class of every error qwen3-rerank raises on purpose."""


class Qwen3RerankValueError(Qwen3RerankError, ValueError):
    """An argument, option or input has a value qwen3-rerank cannot use; the message says which and why."""


class Qwen3RerankTypeError(Qwen3RerankError, TypeError):
    """An argument or option has the wrong type (or name); the message says what is expected."""


class Qwen3RerankFileNotFoundError(Qwen3RerankError, FileNotFoundError):
    """A file or directory qwen3-rerank was pointed at does not exist."""


class PromptTooLongError(Qwen3RerankError, ValueError):
    """The template, instruction and query alone do not fit in ``max_length`` tokens."""


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
