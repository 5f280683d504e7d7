"""Measure a reranker on a BEIR-format dataset: first stage (a TREC run or BM25), rerank, ranx metrics.

Needs the ``eval`` extra (``pip install qwen3-rerank[eval]``) for ranx and bm25s; they are imported only
when metrics or BM25 are computed.
"""

from __future__ import annotations

from .beir import BeirDataset, document_text, load_beir
from .bm25 import bm25_run
from .harness import EvalReport, evaluate_reranker, rerank_run
from .instructions import TASK_INSTRUCTIONS, TaskInstruction, instruction_for
from .metrics import DEFAULT_METRICS, MetricReport, evaluate_run, judged_queries
from .runs import Ranking, Run, ordered, read_trec_run, write_trec_run

__all__ = [
    "DEFAULT_METRICS",
    "TASK_INSTRUCTIONS",
    "BeirDataset",
    "EvalReport",
    "MetricReport",
    "Ranking",
    "Run",
    "TaskInstruction",
    "bm25_run",
    "document_text",
    "evaluate_reranker",
    "evaluate_run",
    "instruction_for",
    "judged_queries",
    "load_beir",
    "ordered",
    "read_trec_run",
    "rerank_run",
    "write_trec_run",
]
