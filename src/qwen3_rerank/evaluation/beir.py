"""Reading a BEIR-format dataset from disk: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

The corpus is streamed, so when only some documents are needed (those a first-stage run names) only
those are kept in memory.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import Qwen3RerankFileNotFoundError, Qwen3RerankValueError

__all__ = ["BeirDataset", "document_text", "load_beir", "read_qrels", "read_queries", "iter_corpus"]


@dataclass(frozen=True)
class BeirDataset:
    """What evaluation needs from a BEIR dataset, read-only.

    ``queries`` holds only the queries judged in ``qrels``; ``corpus`` maps a document id to the text the
    reranker sees (see [`document_text()`][qwen3_rerank.evaluation.document_text]).
    """

    name: str
    split: str
    queries: Mapping[str, str]
    qrels: Mapping[str, Mapping[str, int]]
    corpus: Mapping[str, str]


def document_text(title: str, text: str) -> str:
    """``title + " " + text`` (just ``text`` without a title), the usual BEIR/MTEB document string."""
    title, text = title.strip(), text.strip()
    return f"{title} {text}" if title else text


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise Qwen3RerankValueError(f"{path}:{line_no} is not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or "_id" not in record:
                raise Qwen3RerankValueError(f"{path}:{line_no}: each line must be a JSON object with an '_id' field")
            yield line_no, record


def _text_field(record: dict[str, Any], name: str, where: str, *, required: bool) -> str:
    value = record.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise Qwen3RerankValueError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    return value


def iter_corpus(path: Path, wanted: Collection[str] | None = None) -> Iterator[tuple[str, str]]:
    """(doc id, text) for each corpus line, or only for ids in ``wanted``."""
    for line_no, record in _jsonl(path):
        doc_id = str(record["_id"])
        if wanted is not None and doc_id not in wanted:
            continue
        where = f"{path}:{line_no}"
        yield (
            doc_id,
            document_text(
                _text_field(record, "title", where, required=False), _text_field(record, "text", where, required=True)
            ),
        )


def read_queries(path: Path, wanted: Collection[str] | None = None) -> dict[str, str]:
    queries: dict[str, str] = {}
    for line_no, record in _jsonl(path):
        query_id = str(record["_id"])
        if wanted is None or query_id in wanted:
            queries[query_id] = _text_field(record, "text", f"{path}:{line_no}", required=True)
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``query-id<TAB>corpus-id<TAB>score`` lines; a header line is allowed."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3:
                raise Qwen3RerankValueError(
                    f"{path}:{line_no}: expected query-id<TAB>corpus-id<TAB>score, got {line!r:.80}"
                )
            try:
                relevance = int(fields[2])
            except ValueError:
                if line_no == 1:  # the header, e.g. "query-id	corpus-id	score"
                    continue
                raise Qwen3RerankValueError(f"{path}:{line_no}: the score {fields[2]!r} is not an integer") from None
            qrels.setdefault(fields[0], {})[fields[1]] = relevance
    return qrels


def qrels_path(root: Path, split: str) -> Path:
    path = root / "qrels" / f"{split}.tsv"
    if path.is_file():
        return path
    available = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
    raise Qwen3RerankFileNotFoundError(
        f"{path} does not exist; the qrels splits of {root} are {available or 'none'}. Pass --split with one of them."
    )


def load_beir(root: str | Path, split: str = "test", *, doc_ids: Collection[str] | None = None) -> BeirDataset:
    """Load a BEIR dataset directory.

    Args:
        root: the directory holding ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/``.
        split: which ``qrels/<split>.tsv`` to evaluate on.
        doc_ids: load only these documents (e.g. those a first-stage run retrieved); all when None.
    """
    root = Path(root)
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (root / name).is_file():
            raise Qwen3RerankFileNotFoundError(
                f"{root / name} does not exist; a BEIR dataset directory holds corpus.jsonl, queries.jsonl "
                "and qrels/<split>.tsv"
            )
    qrels = read_qrels(qrels_path(root, split))
    queries = read_queries(root / "queries.jsonl", wanted=qrels.keys())
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise Qwen3RerankValueError(
            f"{len(missing)} judged queries are missing from {root / 'queries.jsonl'} (e.g. {missing[:3]}); "
            "is the qrels file from another dataset?"
        )
    corpus = dict(iter_corpus(root / "corpus.jsonl", wanted=doc_ids))
    resolved = root.resolve()
    # CQADupStack ships one BEIR directory per forum: cqadupstack/gaming, cqadupstack/unix ...
    name = f"{resolved.parent.name}/{resolved.name}" if resolved.parent.name.lower() == "cqadupstack" else resolved.name
    return BeirDataset(
        name=name,
        split=split,
        queries=MappingProxyType(queries),
        qrels=MappingProxyType({q: MappingProxyType(docs) for q, docs in qrels.items()}),
        corpus=MappingProxyType(corpus),
    )
