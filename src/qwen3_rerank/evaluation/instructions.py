"""Task instructions for common retrieval benchmarks.

Qwen3-Reranker was trained with an instruction per task, and scores better with the one that names the
task than with a generic one. These are the retrieval instructions of the E5-mistral / Qwen3-Embedding
evaluations, keyed by BEIR dataset and MTEB task names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..prompt import DEFAULT_INSTRUCTION

__all__ = ["TASK_INSTRUCTIONS", "TaskInstruction", "instruction_for"]

_CQADUPSTACK = (
    "Given a question, retrieve detailed question descriptions from Stackexchange that are duplicates to the "
    "given question"
)

#: canonical task key -> instruction. Keys are normalised names (see `_normalise`).
TASK_INSTRUCTIONS: dict[str, str] = {
    "arguana": "Given a claim, find documents that refute the claim",
    "climatefever": "Given a claim about climate change, retrieve documents that support or refute the claim",
    "cqadupstack": _CQADUPSTACK,
    "dbpedia": "Given a query, retrieve relevant entity descriptions from DBPedia",
    "fever": "Given a claim, retrieve documents that support or refute the claim",
    "fiqa": "Given a financial question, retrieve user replies that best answer the question",
    "hotpotqa": "Given a multi-hop question, retrieve documents that can help answer the question",
    "msmarco": "Given a web search query, retrieve relevant passages that answer the query",
    "nfcorpus": "Given a question, retrieve relevant documents that best answer the question",
    "nq": "Given a question, retrieve Wikipedia passages that answer the question",
    "quora": "Given a question, retrieve questions that are semantically equivalent to the given question",
    "scidocs": "Given a scientific paper title, retrieve paper abstracts that are cited by the given paper",
    "scifact": "Given a scientific claim, retrieve documents that support or refute the claim",
    "touche2020": "Given a question, retrieve detailed and persuasive arguments that answer the question",
    "treccovid": "Given a query on COVID-19, retrieve documents that answer the query",
}

# BEIR directory names and MTEB task names that differ from the canonical key once normalised.
_ALIASES = {
    "dbpediaentity": "dbpedia",
    "fiqa2018": "fiqa",
    "quoraretrieval": "quora",
    "webistouche2020": "touche2020",
}


@dataclass(frozen=True, slots=True)
class TaskInstruction:
    """The instruction chosen for a task, and whether it came from the table."""

    task: str
    instruction: str
    known: bool


def _normalise(name: str) -> str:
    # "Touche2020Retrieval.v3" -> "touche2020"; "cqadupstack/gaming" -> "cqadupstackgaming";
    # "ClimateFEVERHardNegatives" -> "climatefever".
    key = re.sub(r"[^0-9a-z]", "", name.lower())
    key = re.sub(r"v\d+$", "", key)
    for suffix in ("hardnegatives", "retrieval"):
        key = key.removesuffix(suffix)
    return key


def instruction_for(task: str) -> TaskInstruction:
    """The table's instruction for ``task`` (a BEIR dataset or MTEB task name), else the default one."""
    key = _normalise(task)
    key = _ALIASES.get(key, key)
    if key.startswith("cqadupstack"):
        key = "cqadupstack"
    if key in TASK_INSTRUCTIONS:
        return TaskInstruction(task=task, instruction=TASK_INSTRUCTIONS[key], known=True)
    return TaskInstruction(task=task, instruction=DEFAULT_INSTRUCTION, known=False)
