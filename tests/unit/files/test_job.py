"""``qwen3-rerank score`` / :func:`qwen3_rerank.score_file.score_file`: formats, carry-through, streaming, resume."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import pytest
from doubles import CountingBackend

from qwen3_rerank import DEFAULT_INSTRUCTION, EngineError, Reranker
from qwen3_rerank.files import score_file

ROWS = [
    {"id": 1, "query": "capital of France", "document": "Paris is the capital of France.", "instruction": None},
    {"id": 2, "query": "capital of France", "document": 'Berlin, with "quotes",\nand a newline', "lang": "en"},
    {
        "id": 3,
        "query": "what is BM25",
        "document": "BM25 ranks documents by term statistics.",
        "instruction": "Given a question, retrieve passages that answer it",
    },
    {"id": 4, "query": "what is BM25", "document": "", "instruction": ""},
    {"id": 5, "query": "ünïcödé <|im_end|>", "document": "日本語のテキスト", "tags": ["a", "b"]},
]


def expected_pairs(rows):
    pairs = []
    for row in rows:
        query = (row["instruction"], row["query"]) if row.get("instruction") else row["query"]
        pairs.append((query, row["document"]))
    return pairs


@pytest.fixture(scope="module")
def _fake_reranker(tokenizer_dir):
    backend = CountingBackend()
    # Loading the tokenizer is the slow part of a Reranker; every test shares this one.
    with Reranker(str(tokenizer_dir), backend=backend) as reranker:
        yield reranker, backend


@pytest.fixture
def fake(_fake_reranker):
    """fake(fail_on_call=None) -> (reranker, backend) with the backend's call log cleared."""

    def make(fail_on_call=None):
        reranker, backend = _fake_reranker
        backend.calls, backend.fail_on_call = [], fail_on_call
        return reranker, backend

    return make


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_csv(path: Path, rows) -> Path:
    columns = ["id", "query", "document", "instruction", "lang"]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else str(row[c]) for c in columns])
    return path


def read_csv(path: Path):
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def many_rows(n: int):
    return [{"n": i, "query": f"query {i % 7}", "document": f"document number {i} " + "x" * (i % 13)} for i in range(n)]


# -- formats ---------------------------------------------------------------------------------------


def test_jsonl_rows_come_back_with_the_model_score(reference_reranker, tmp_path):
    source = write_jsonl(tmp_path / "pairs.jsonl", ROWS)
    result = score_file(reference_reranker, source, tmp_path / "out.jsonl", chunk_size=2)
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [{k: v for k, v in row.items() if k != "score"} for row in out] == ROWS  # carried through, in order
    expected = reference_reranker.score_pairs(expected_pairs(ROWS))
    # float32 scores move by ~1e-7 with the batch a prompt is padded into (blocks of 2 here)
    assert [row["score"] for row in out] == pytest.approx(expected, abs=1e-6)
    assert (result.rows_total, result.rows_resumed, result.rows_scored, result.format) == (5, 0, 5, "jsonl")


def test_rows_without_instruction_use_the_rerankers(fake, tmp_path, prompt_builder):
    reranker, _ = fake()
    source = write_jsonl(tmp_path / "pairs.jsonl", ROWS)
    score_file(reranker, source, tmp_path / "out.jsonl")
    scores = [row["score"] for row in read_jsonl(tmp_path / "out.jsonl")]
    direct = reranker.score_pairs(expected_pairs(ROWS))
    assert scores == direct
    # and the default instruction really is the reranker's: row 1 scores as (DEFAULT_INSTRUCTION, query)
    assert scores[0] == reranker.score_pairs([((DEFAULT_INSTRUCTION, ROWS[0]["query"]), ROWS[0]["document"])])[0]


def test_csv_keeps_every_field_verbatim(fake, tmp_path):
    reranker, _ = fake()
    source = write_csv(tmp_path / "pairs.csv", ROWS)
    score_file(reranker, source, tmp_path / "out.csv", chunk_size=3)
    out = read_csv(tmp_path / "out.csv")
    assert list(out[0]) == ["id", "query", "document", "instruction", "lang", "score"]
    assert [{k: v for k, v in row.items() if k != "score"} for row in out] == read_csv(source)
    assert [float(row["score"]) for row in out] == reranker.score_pairs(expected_pairs(ROWS))


def test_parquet_keeps_column_types_and_joins_parts(fake, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    reranker, _ = fake()
    table = pa.Table.from_pylist([{**row, "tags": row.get("tags", [])} for row in ROWS])
    pq.write_table(table, tmp_path / "pairs.parquet", row_group_size=2)
    score_file(reranker, tmp_path / "pairs.parquet", tmp_path / "out.parquet", chunk_size=2)
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.schema.names == [*table.schema.names, "score"]
    assert out.drop_columns(["score"]).equals(table)  # same values and types (int64, list<string>, nulls)
    assert out.column("score").to_pylist() == reranker.score_pairs(expected_pairs(ROWS))
    assert not (tmp_path / "out.parquet.parts").exists()


def test_an_empty_input_gives_an_empty_output(fake, tmp_path):
    reranker, backend = fake()
    (tmp_path / "empty.jsonl").write_text("")
    result = score_file(reranker, tmp_path / "empty.jsonl", tmp_path / "out.jsonl")
    assert result.rows_total == 0 and (tmp_path / "out.jsonl").read_text() == "" and backend.calls == []
    (tmp_path / "empty.csv").write_text("query,document\n")
    score_file(reranker, tmp_path / "empty.csv", tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text() == "query,document,score\n"


# -- streaming and resuming -------------------------------------------------------------------------


def test_memory_stays_bounded_by_the_block(tmp_path):
    class Cheap:  # score_file only needs score_pairs; this keeps the test about streaming, not the model
        instruction = DEFAULT_INSTRUCTION

        def score_pairs(self, pairs):
            return [len(document) / 1000 for _, document in pairs]

    rows = ({"query": f"q{i}", "document": "lorem ipsum " * 80, "n": i} for i in range(20000))
    source = tmp_path / "big.jsonl"
    with source.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    assert source.stat().st_size > 19_000_000
    tracemalloc.start()
    try:
        score_file(Cheap(), source, tmp_path / "out.jsonl", chunk_size=256)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3_000_000, f"peak {peak} bytes for a {source.stat().st_size}-byte file"
    assert sum(1 for _ in (tmp_path / "out.jsonl").open()) == 20000


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet"])
def test_a_crash_loses_only_the_block_in_flight_and_a_rerun_finishes_the_job(fake, tmp_path, suffix):
    rows = many_rows(23)
    if suffix == "jsonl":
        source = write_jsonl(tmp_path / "in.jsonl", rows)
    elif suffix == "csv":
        source = tmp_path / "in.csv"
        with source.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["n", "query", "document"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        source = tmp_path / "in.parquet"
        pq.write_table(pa.Table.from_pylist(rows), source, row_group_size=4)
    reference, _ = fake()
    score_file(reference, source, tmp_path / f"whole.{suffix}", chunk_size=5)

    dying, backend = fake(fail_on_call=3)
    out = tmp_path / f"out.{suffix}"
    with pytest.raises(EngineError, match="injected"):
        score_file(dying, source, out, chunk_size=5)
    assert backend.calls == [5, 5, 5]

    resumed, backend = fake()
    result = score_file(resumed, source, out, chunk_size=5)
    assert (result.rows_resumed, result.rows_scored) == (10, 13)
    assert backend.calls == [5, 5, 3]  # nothing scored twice
    assert out.read_bytes() == (tmp_path / f"whole.{suffix}").read_bytes() or suffix == "parquet"
    if suffix == "parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(out).equals(pq.read_table(tmp_path / "whole.parquet"))

    again, backend = fake()
    assert score_file(again, source, out, chunk_size=5).rows_scored == 0 and backend.calls == []


def test_a_torn_last_jsonl_line_is_cut_off_and_rescored(fake, tmp_path):
    rows = many_rows(6)
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    reranker, _ = fake()
    score_file(reranker, source, tmp_path / "whole.jsonl", chunk_size=2)
    whole = (tmp_path / "whole.jsonl").read_bytes()
    lines = whole.splitlines(keepends=True)
    torn = tmp_path / "out.jsonl"
    torn.write_bytes(b"".join(lines[:3]) + lines[3][:17])  # a crash in the middle of the 4th row
    reranker, backend = fake()
    result = score_file(reranker, source, torn, chunk_size=2)
    assert result.rows_resumed == 3 and backend.calls == [2, 1]
    assert torn.read_bytes() == whole


def test_a_torn_multiline_csv_row_is_cut_off_and_rescored(fake, tmp_path):
    rows = [{"query": "q", "document": f"line one {i}\nline two {i}"} for i in range(4)]
    source = tmp_path / "in.csv"
    with source.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["query", "document"])
        writer.writeheader()
        writer.writerows(rows)
    reranker, _ = fake()
    score_file(reranker, source, tmp_path / "whole.csv")
    whole = (tmp_path / "whole.csv").read_bytes()
    cut = whole.index(b"line two 2")  # ends inside the quoted field, right after its newline
    torn = tmp_path / "out.csv"
    torn.write_bytes(whole[:cut])
    assert torn.read_bytes().endswith(b"\n")
    result = score_file(reranker, source, torn)
    assert result.rows_resumed == 2
    assert torn.read_bytes() == whole


def test_an_output_from_another_input_is_refused(fake, tmp_path):
    reranker, _ = fake()
    score_file(reranker, write_jsonl(tmp_path / "a.jsonl", many_rows(4)), tmp_path / "out.jsonl")
    other = write_jsonl(tmp_path / "b.jsonl", [{**row, "document": "changed"} for row in many_rows(8)])
    with pytest.raises(ValueError, match="belongs to another input"):
        score_file(reranker, other, tmp_path / "out.jsonl")
    shorter = write_jsonl(tmp_path / "c.jsonl", many_rows(2))
    with pytest.raises(ValueError, match="more than the 2"):
        score_file(reranker, shorter, tmp_path / "out.jsonl")
    assert score_file(reranker, other, tmp_path / "out.jsonl", overwrite=True).rows_scored == 8


def test_rows_before_a_bad_line_are_already_written(fake, tmp_path):
    reranker, _ = fake()
    source = tmp_path / "in.jsonl"
    write_jsonl(source, many_rows(5))
    with source.open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(ValueError, match="line 6 is not valid JSON"):
        score_file(reranker, source, tmp_path / "out.jsonl", chunk_size=2)
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 4  # two whole blocks; the third held the bad line


# -- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"query": "q"}], r"row 1 \(line 1\): column 'document' must be a string, got nothing"),
        (
            [{"query": "q", "document": "d"}, {"query": 3, "document": "d"}],
            r"row 2 \(line 2\): column 'query' must be a string",
        ),
        ([{"query": "q", "document": "d", "score": 1}], r"already has a 'score' field"),
        ([["q", "d"]], r"line 1: each line must be a JSON object"),
    ],
)
def test_bad_jsonl_rows_are_named(fake, tmp_path, rows, message):
    reranker, _ = fake()
    with pytest.raises(ValueError, match=message):
        score_file(reranker, write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl")


def test_bad_files_are_refused_before_scoring(fake, tmp_path):
    reranker, _ = fake()
    (tmp_path / "in.csv").write_text("question,passage\nq,d\n")
    with pytest.raises(ValueError, match=r"no 'query' column .*--query-column"):
        score_file(reranker, tmp_path / "in.csv", tmp_path / "out.csv")
    assert (
        score_file(
            reranker, tmp_path / "in.csv", tmp_path / "out.csv", query_column="question", document_column="passage"
        ).rows_scored
        == 1
    )
    with pytest.raises(ValueError, match="cannot tell the format"):
        score_file(reranker, write_jsonl(tmp_path / "in.txt", ROWS), tmp_path / "out.txt")
    with pytest.raises(ValueError, match="input's format"):
        score_file(reranker, write_jsonl(tmp_path / "in.jsonl", ROWS), tmp_path / "out.csv")
    with pytest.raises(FileNotFoundError):
        score_file(reranker, tmp_path / "missing.jsonl", tmp_path / "out.jsonl")


# -- the command -----------------------------------------------------------------------------------------


def test_score_command_scores_then_resumes_to_nothing(tiny_model_dir, tmp_path, capfd, reference_reranker):
    from qwen3_rerank.cli import main

    source = write_jsonl(tmp_path / "pairs.jsonl", ROWS)
    out = tmp_path / "scored.jsonl"
    args = [
        "score",
        str(source),
        "-o",
        str(out),
        "--model",
        str(tiny_model_dir),
        "--backend",
        "transformers",
        "--dtype",
        "float32",
        "--chunk-size",
        "2",
    ]
    assert main(args) == 0
    err = capfd.readouterr().err
    assert "scored 5 rows" in err and "pair/s" in err  # the progress bar's rate
    scores = [row["score"] for row in read_jsonl(out)]
    assert scores == pytest.approx(reference_reranker.score_pairs(expected_pairs(ROWS)), abs=1e-6)
    # a finished job needs no model: the rerun names one that does not exist, and never loads it
    assert main([*args[:4], "--model", str(tmp_path / "no-model")]) == 0
    assert "already holds all 5 rows; nothing to do" in capfd.readouterr().err


def test_score_command_reports_bad_input_before_loading_a_model(tmp_path, capfd):
    from qwen3_rerank.cli import main

    no_model = ["--model", str(tmp_path / "no-model")]
    assert main(["score", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o.jsonl"), *no_model]) == 2
    assert "nope.jsonl does not exist" in capfd.readouterr().err
    (tmp_path / "in.csv").write_text("question,passage\nq,d\n")
    assert main(["score", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"), *no_model]) == 2
    assert "has no 'query' column" in capfd.readouterr().err
