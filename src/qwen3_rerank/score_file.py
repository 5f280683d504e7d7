"""The file scorer's former home: ``qwen3_rerank.score_file`` names what ``qwen3_rerank.files`` holds.

Kept so that ``from qwen3_rerank.score_file import score_file`` goes on working; new code imports from
``qwen3_rerank.files``.
"""

from .files import FORMATS, ScoreFileJob, ScoreFileResult, detect_format, plan_score_file, score_file

__all__ = ["FORMATS", "ScoreFileJob", "ScoreFileResult", "detect_format", "plan_score_file", "score_file"]
