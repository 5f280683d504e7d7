"""Resumable file scoring: one plan, two runners.

- ``rows``: the ``RowFormat`` protocol every format implements, checked pairs and blocks of rows;
  ``jsonl``, ``csv_rows`` and ``parquet`` are the formats.
- ``output``: where rows go (a regular file, resumable; or standard output for ``-o -``).
- ``manifest``: the settings a partial output was scored with; a resume under other settings is refused,
  naming the fields that differ, whichever runner runs it.
- ``job``: the plan (``plan_score_file``, ``ScoreFileJob``): read, resume, write and join, block by block;
  ``score_file``.
- ``runner``: what a runner is (``BlockRunner``) and the local runner (one in-process ``Reranker``);
  ``ray_runner``: the Ray runner (a pool of Ray actors, one ``Reranker`` each; ``qwen3-rerank score --on
  ray``, ``qwen3-rerank batch``).
- ``ranks``: ``add_ranks``, each row's rank within its query, added to a finished output.
"""

from .job import FORMATS, ScoreFileJob, ScoreFileResult, detect_format, plan_score_file, score_file
from .manifest import run_settings
from .ranks import add_ranks
from .ray_runner import RayRunner
from .rows import RowFormat
from .runner import BlockRunner, LocalRunner

__all__ = [
    "FORMATS",
    "BlockRunner",
    "LocalRunner",
    "RayRunner",
    "RowFormat",
    "ScoreFileJob",
    "ScoreFileResult",
    "add_ranks",
    "detect_format",
    "plan_score_file",
    "run_settings",
    "score_file",
]
