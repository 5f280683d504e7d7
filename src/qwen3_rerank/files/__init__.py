"""Resumable file scoring: one package, two runners.

- ``rows``: the ``RowFormat`` protocol every format implements, checked pairs and chunks of rows;
  ``jsonl``, ``csv_rows`` and ``parquet`` are the formats.
- ``output``: where rows go (a regular file, resumable; or standard output for ``-o -``).
- ``manifest``: the settings a partial output was scored with; both runners refuse to resume it under
  other settings, naming the fields that differ.
- ``local``: the local runner (``qwen3-rerank score``, ``score_file``).
- The Ray Data runner (``qwen3-rerank batch``) is ``qwen3_rerank.batch``; it shares the format detection,
  the atomic writes, the run settings and the manifest check.
"""

from .local import FORMATS, ScoreFileJob, ScoreFileResult, detect_format, plan_score_file, score_file
from .manifest import run_settings
from .rows import RowFormat

__all__ = [
    "FORMATS",
    "RowFormat",
    "ScoreFileJob",
    "ScoreFileResult",
    "detect_format",
    "plan_score_file",
    "run_settings",
    "score_file",
]
