"""Restartable batch jobs on Ray: score files of (query, document) pairs across a cluster.

Needs ``pip install qwen3-rerank[ray]``; Ray and pyarrow are imported only when a job runs.
"""

from .job import BatchSummary, run_batch_job
from .pairs import read_pairs

__all__ = ["BatchSummary", "read_pairs", "run_batch_job"]
