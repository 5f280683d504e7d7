"""``add_ranks`` (``batch --rank``): a rank within each group added to a finished output, any format,
every other column kept verbatim; no model needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwen3_rerank.files import add_ranks

ROWS = [
    {"query_id": "q1", "doc_id": "a", "query": "x", "document": "one", "score": 0.2},
    {"query_id": "q2", "doc_id": "a", "query": "y", "document": "two", "score": 0.9},
    {"query_id": "q1", "doc_id": "b", "query": "x", "document": "three", "score": 0.7},
    {"query_id": "q1", "doc_id": "c", "query": "x", "document": "four", "score": 0.2},  # ties with a: after it
    {"query_id": "q2", "doc_id": "b", "query": "y", "document": "five", "score": 0.95},
]
RANKS = [2, 2, 1, 3, 1]


def test_jsonl_rows_get_their_rank_and_keep_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "scored.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    add_ranks(path, chunk_size=2)
    out = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert out == [{**r, "rank": rank} for r, rank in zip(ROWS, RANKS, strict=True)]
    before = path.read_bytes()
    add_ranks(path)  # ranked already: left as it is
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scored.jsonl"]  # no temporary left


def test_csv_values_stay_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "scored.csv"
    lines = ["query_id,doc_id,query,document,score"]
    lines += [f"{r['query_id']},00{r['doc_id']},{r['query']},{r['document']},{r['score']!r}" for r in ROWS]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    add_ranks(path, chunk_size=3)
    got = path.read_text(encoding="utf-8").splitlines()
    assert got[0] == "query_id,doc_id,query,document,score,rank"
    assert got[1:] == [f"{line},{rank}" for line, rank in zip(lines[1:], RANKS, strict=True)]


def test_parquet_ranks_are_integers(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "scored.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    add_ranks(path, chunk_size=2)
    table = pq.read_table(path)
    assert table.schema.field("rank").type == pa.int64()
    assert table.to_pylist() == [{**r, "rank": rank} for r, rank in zip(ROWS, RANKS, strict=True)]
    assert not (tmp_path / ".scored.parquet.ranked.parquet.parts").exists()


def test_a_row_without_a_group_is_named(tmp_path: Path) -> None:
    path = tmp_path / "scored.jsonl"
    rows = [dict(ROWS[0]), {k: v for k, v in ROWS[1].items() if k != "query_id"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ValueError, match="row 2 has no 'query_id' to rank within"):
        add_ranks(path)
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows  # untouched
