"""Exceptions raised by qwen3-rerank. Every message says what was wrong and how to fix it.

Every error raised on purpose derives from [`Qwen3RerankError`][qwen3_rerank.Qwen3RerankError] and from the builtin it
stands for, so ``except ValueError`` and ``except Qwen3RerankError`` both work::

    Qwen3RerankError
    ├── Qwen3RerankValueError (ValueError)        bad argument or input value
    │   ├── PromptTooLongError
    │   └── NotAQwen3RerankerError
    ├── Qwen3RerankTypeError (TypeError)          argument of the wrong type
    ├── Qwen3RerankFileNotFoundError (FileNotFoundError)
    │   └── ModelNotFoundError
    ├── BackendNotInstalledError (ImportError)    a package of an extra is missing
    └── EngineError (RuntimeError)
        └── ServerError

Anything else that escapes (a bare ``TypeError`` from deep inside) is a bug: the command line shows its
traceback instead of a one-line message.
"""

from __future__ import annotations

__all__ = [
    "BackendNotInstalledError",
    "DocumentTooLongError",
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
    """An argument or an input (a file's rows, a query, an option) has a value qwen3-rerank cannot use."""


class Qwen3RerankTypeError(Qwen3RerankError, TypeError):
    """An argument has the wrong type; the message names the type expected."""


class Qwen3RerankFileNotFoundError(Qwen3RerankError, FileNotFoundError):
    """A file or directory qwen3-rerank was pointed at does not exist."""


class PromptTooLongError(Qwen3RerankValueError):
    """The template, instruction and query alone do not fit in ``max_length`` tokens."""


class DocumentTooLongError(Qwen3RerankValueError):
    """In ``long_documents="chunk"`` mode, a document needs more than ``max_chunks`` chunks."""


class ModelNotFoundError(Qwen3RerankFileNotFoundError):
    """The model (or its tokenizer) is neither a local directory nor reachable on the Hub."""


class NotAQwen3RerankerError(Qwen3RerankValueError):
    """The checkpoint or tokenizer is not a Qwen3-Reranker (wrong vocabulary or architecture)."""


class BackendNotInstalledError(Qwen3RerankError, ImportError):
    """The backend or feature asked for needs a package that is not installed; the message names the extra."""


class EngineError(Qwen3RerankError, RuntimeError):
    """The inference engine failed; the reranker stays usable and the message says what happened."""


class ServerError(EngineError):
    """A vLLM server could not score: unreachable, refused the request, or answered wrongly.

    ``urls`` names the server(s) involved.
    """

    def __init__(self, message: str, urls: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.urls = urls
