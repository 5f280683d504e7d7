"""The settings a file was scored with, and the refusal to resume it under other ones.

Every run of the file-scoring plan, on either runner (local or Ray), writes these settings beside its
partial output before scoring, and a rerun whose settings differ is refused with the differing fields named:
resuming with another model (or dtype, instruction, ...) would silently mix two models' scores in one file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..chunking import ChunkOptions
from ..errors import Qwen3RerankValueError
from ..file_io import atomic_write_text

if TYPE_CHECKING:
    from ..reranker import Reranker
    from ..settings import RerankerSettings

__all__ = ["Manifest", "check_same_settings", "reranker_settings", "run_settings", "settings_record"]


def run_settings(
    *,
    model: str,
    backend: str,
    dtype: Any = None,
    instruction: str,
    max_length: int,
    chunking: ChunkOptions,
) -> dict[str, Any]:
    """Everything that changes a score: the one spelling of a run's settings in every manifest."""
    return {
        "model": model,
        "backend": backend,
        "dtype": "auto" if dtype is None else str(dtype),
        "instruction": instruction,
        "max_length": max_length,
        "chunking": dataclasses.asdict(chunking),
        "version": __version__,
    }


def reranker_settings(reranker: Any) -> dict[str, Any] | None:
    """A Reranker's run settings; None for any other scorer (a test double, say), which says nothing."""
    from ..reranker import Reranker

    if not isinstance(reranker, Reranker):
        return None
    return _settings_of(reranker)


def _settings_of(reranker: Reranker) -> dict[str, Any]:
    return {**settings_record(reranker.settings), "max_length": reranker.max_length}


def settings_record(settings: RerankerSettings) -> dict[str, Any]:
    """The run settings of a reranker built from ``settings``: the backend's name and the dtype asked for
    ("auto" when none). What the Ray runner, whose rerankers live in actors, records."""
    backend = settings.backend if isinstance(settings.backend, str) else settings.backend.name
    return run_settings(
        model=settings.model,
        backend=backend,
        dtype=(settings.engine_options or {}).get("dtype"),
        instruction=settings.instruction,
        max_length=settings.max_length,
        chunking=settings.chunking,
    )


def check_same_settings(recorded: Mapping[str, Any], current: Mapping[str, Any], what: str, fix: str) -> None:
    """Refuse ``current`` unless it equals ``recorded``, naming each field that differs and its two values."""
    current = json.loads(json.dumps(dict(current)))  # as it would read back (tuples are lists ...)
    changed = sorted(k for k in {*recorded, *current} if recorded.get(k) != current.get(k))
    if changed:
        details = "; ".join(f"{k} was {recorded.get(k)!r}, now {current.get(k)!r}" for k in changed)
        raise Qwen3RerankValueError(
            f"{what} was scored with other settings ({', '.join(changed)} differ: {details}); resuming would mix "
            f"two settings' scores in one file. {fix}"
        )


class Manifest:
    """A JSON file of ``{"settings": ...}`` beside a partial output."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        try:
            settings = json.loads(self.path.read_text(encoding="utf-8")).get("settings")
        except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
            raise Qwen3RerankValueError(
                f"{self.path} is not a settings manifest written by qwen3-rerank; delete it, or start over"
            ) from None
        return settings if isinstance(settings, dict) else None

    def write(self, settings: Mapping[str, Any]) -> None:
        atomic_write_text(self.path, json.dumps({"settings": dict(settings)}, indent=2, sort_keys=True))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
