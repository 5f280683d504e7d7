"""The ``qwen3-rerank`` command line. ``qwen3-rerank rank QUERY < docs.txt`` is the main job.

Each subcommand lives in its own module of this package exposing ``add_parser(subparsers)``; the parser's ``run``
default is called with the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import Qwen3RerankError, Qwen3RerankValueError

if TYPE_CHECKING:
    from ..reranker import Reranker
    from ..settings import RerankerSettings

__all__ = ["main", "add_model_arguments", "reranker_from_args", "settings_from_args"]

_COMMAND_MODULES = ("rank", "random_model", "eval", "score", "batch")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every scoring command shares."""
    from ..backends.registry import BACKENDS
    from ..prompt import DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH
    from ..reranker import DEFAULT_MODEL

    group = parser.add_argument_group("model")
    group.add_argument("--model", default=DEFAULT_MODEL, help="Hub name or local directory (default: %(default)s)")
    group.add_argument(
        "--backend",
        choices=tuple(BACKENDS),
        default="vllm",
        help="; ".join(f"{spec.name}: {spec.summary}" for spec in BACKENDS.values())
        + "; server takes --engine-option base_urls='[\"http://HOST:8000\"]'",
    )
    group.add_argument("--instruction", default=DEFAULT_INSTRUCTION, help="task instruction (default: web search)")
    group.add_argument("--max-length", type=int, default=DEFAULT_MAX_LENGTH, help="prompt token budget")
    group.add_argument("--dtype", default=None, help="model dtype, e.g. bfloat16 or float32 (default: auto)")
    group.add_argument(
        "--engine-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra backend option, repeatable (JSON values), e.g. --engine-option gpu_memory_utilization=0.5",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show vLLM's log (INFO and WARNING lines) and library warnings on stderr; by default only errors",
    )


def _engine_options(args: argparse.Namespace) -> dict[str, object]:
    import json

    options: dict[str, object] = {}
    if args.dtype:
        options["dtype"] = args.dtype
    for item in args.engine_option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise Qwen3RerankValueError(
                f"--engine-option takes KEY=VALUE (the value in JSON, or plain text), got {item!r}; "
                "e.g. --engine-option gpu_memory_utilization=0.5"
            )
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    if args.backend == "vllm":
        # No weight-loading progress bar: on a failure the first line of stderr is then the error.
        options.setdefault("use_tqdm_on_load", False)
    return options


def settings_from_args(args: argparse.Namespace, *, show_progress: bool = False) -> RerankerSettings:
    """The one mapping from the shared model options to a reranker's settings (every command, every runner)."""
    from ..settings import RerankerSettings
    from .chunking import long_document_options

    return RerankerSettings.create(
        args.model,
        backend=args.backend,
        instruction=args.instruction,
        max_length=args.max_length,
        engine_options=_engine_options(args),
        batch_size=getattr(args, "batch_size", 4096),  # only batch has --batch-size
        show_progress=show_progress,
        **long_document_options(args),
    )


def reranker_from_args(args: argparse.Namespace, *, show_progress: bool = False) -> Reranker:
    from ..reranker import Reranker

    return Reranker.from_settings(settings_from_args(args, show_progress=show_progress))


def _parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="qwen3-rerank", description="Rerank documents with Qwen3-Reranker on vLLM.")
    parser.add_argument("--version", action="version", version=f"qwen3-rerank {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f".{name}", __package__).add_parser(sub)
    return parser


@contextlib.contextmanager
def _stdout_reserved_for_results() -> Iterator[None]:
    """Results go to stdout; everything else that writes to file descriptor 1 (vLLM's engine
    processes, C++ warnings) goes to stderr, so `qwen3-rerank ... --format json | jq` always works."""
    sys.stdout.flush()
    saved_fd, saved_stream = os.dup(1), sys.stdout
    sys.stdout = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="replace")
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout.close()
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
        sys.stdout = saved_stream


def _log_levels(verbose: bool) -> None:
    """Before vLLM is imported: its engine processes read these from the environment.

    By default only errors: vLLM logs every engine detail at INFO and warns about its CPU build (Triton,
    oneDNN, tcmalloc ...) on every run, which buries the one line a command-line user needs. ``-v`` shows it
    all. A level the user set in the environment is kept unless ``-v`` asks for more.
    """
    if verbose:
        os.environ["VLLM_LOGGING_LEVEL"] = "INFO"
        return
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # the engine processes' Python warnings


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    # Nor loading bars (Hub downloads, transformers' weight loading): results and errors only, so the first
    # line of stderr on a failure is the error. The reranking bar of large inputs stays.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    args = _parser().parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    _log_levels(verbose)
    try:
        with _stdout_reserved_for_results(), warnings.catch_warnings():
            if not verbose:
                warnings.simplefilter("ignore")
            return int(args.run(args) or 0)
    # Deliberate errors, and a path the user named that cannot be opened, are one line; anything else
    # (a bare TypeError from our code, say) is a bug and keeps its traceback.
    except (Qwen3RerankError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        message = " ".join(str(exc).split())
        print(f"qwen3-rerank: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
