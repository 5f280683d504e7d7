"""The evaluation harness on tests/fixtures/beir-mini, against metric values derived by hand.

The oracle never calls ranx: expected values are written out from the trec_eval definitions
(NDCG@k with linear gain rel/log2(rank+1); MRR@k = 1/rank of the first relevant document within k;
Recall@k = relevant documents within k / all relevant documents; relevant means relevance >= 1).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from functools import cmp_to_key
from types import MappingProxyType

import pytest
from paths import FIXTURES

pytest.importorskip("ranx")

from qwen3_rerank import DEFAULT_INSTRUCTION, Reranker
from qwen3_rerank.evaluation import (
    BeirDataset,
    bm25_run,
    evaluate_reranker,
    evaluate_run,
    instruction_for,
    load_beir,
    read_trec_run,
    rerank_run,
    write_trec_run,
)

MINI = FIXTURES / "beir-mini"
TEXTS = {  # title + " " + text, as the harness shows documents to the reranker
    "d1": "Paris Paris is the capital and largest city of France.",
    "d2": "Berlin Berlin is the capital of Germany.",
    "d3": "Eiffel Tower The Eiffel Tower is a wrought-iron tower in Paris, France.",
    "d4": "Lyon Lyon is the third-largest city of France, known for its cuisine.",
    "d5": "Photosynthesis Photosynthesis converts light energy into chemical energy in plants.",
    "d6": "Chlorophyll Chlorophyll is the green pigment that absorbs light for photosynthesis.",
    "d7": "Mitochondria Mitochondria produce most of the chemical energy a cell needs.",
    "d8": "Python Python is a programming language that emphasises readability.",
    "d9": "Rust Rust is a programming language focused on memory safety.",
    "d10": "Pythons are large non-venomous snakes found in Africa and Asia.",
}
QUERIES = {
    "q1": "What is the capital of France?",
    "q2": "How do plants turn light into energy?",
    "q3": "Which programming language is known for memory safety?",
}
QRELS = {"q1": {"d1": 2, "d3": 1, "d2": 0}, "q2": {"d5": 2, "d6": 1}, "q3": {"d9": 1}, "q4": {"d1": 0}}
METRICS = ("ndcg@10", "mrr@10", "recall@10", "recall@100")

# Injected reranker scores per (query id, doc id). q3's two documents tie on purpose.
INJECTED = {
    ("q1", "d4"): 0.2,
    ("q1", "d2"): 0.1,
    ("q1", "d3"): 0.9,
    ("q1", "d1"): 0.99,
    ("q1", "d10"): 0.5,
    ("q2", "d7"): 0.3,
    ("q2", "d6"): 0.8,
    ("q2", "d5"): 0.95,
    ("q3", "d8"): 0.4,
    ("q3", "d10"): 0.4,
}


# -- the oracle -----------------------------------------------------------------------------------


def ndcg(ranking: Sequence[str], rels: dict[str, int], k: int) -> float:
    dcg = sum(rels.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranking[:k], 1))
    ideal = sorted((r for r in rels.values() if r >= 1), reverse=True)[:k]
    return dcg / sum(r / math.log2(rank + 1) for rank, r in enumerate(ideal, 1))


def mrr(ranking: Sequence[str], rels: dict[str, int], k: int) -> float:
    return next((1 / rank for rank, doc in enumerate(ranking[:k], 1) if rels.get(doc, 0) >= 1), 0.0)


def recall(ranking: Sequence[str], rels: dict[str, int], k: int) -> float:
    relevant = {doc for doc, r in rels.items() if r >= 1}
    return len(relevant & set(ranking[:k])) / len(relevant)


def best_first(a: tuple[str, float], b: tuple[str, float]) -> int:
    """Higher score first; a tie puts the larger document id first (trec_eval)."""
    if a[1] != b[1]:
        return -1 if a[1] > b[1] else 1
    return -1 if a[0] > b[0] else (1 if a[0] < b[0] else 0)


def oracle(rankings: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Per-query metrics of the judged queries that have a relevant document (q1, q2, q3)."""
    return {
        q: {
            "ndcg@10": ndcg(rankings.get(q, []), QRELS[q], 10),
            "mrr@10": mrr(rankings.get(q, []), QRELS[q], 10),
            "recall@10": recall(rankings.get(q, []), QRELS[q], 10),
            "recall@100": recall(rankings.get(q, []), QRELS[q], 100),
        }
        for q in ("q1", "q2", "q3")
    }


def assert_report_matches(report, expected: dict[str, dict[str, float]]) -> None:
    assert set(report.per_query) == set(expected)
    for q, values in expected.items():
        for metric, value in values.items():
            assert report.per_query[q][metric] == pytest.approx(value, abs=1e-12), (q, metric)
    for metric in METRICS:
        mean = sum(values[metric] for values in expected.values()) / len(expected)
        assert report.overall[metric] == pytest.approx(mean, abs=1e-12), metric


# -- a backend that returns chosen scores -----------------------------------------------------------

_PROMPT = re.compile(r"<Instruct>: (.*)\n<Query>: (.*)\n<Document>: (.*)<\|im_end\|>\n<\|im_start\|>assistant", re.S)


class InjectedScores:
    """A ScoringBackend that reads each prompt back and returns the score chosen for its (query, document)."""

    name = "injected"
    max_prompt_tokens = None

    def __init__(self, prompt_builder) -> None:
        self.builder = prompt_builder
        self.seen: list[tuple[str, str, str]] = []
        self.table = {(QUERIES[q], TEXTS[d]): s for (q, d), s in INJECTED.items()}

    def score_prompts(self, prompts):
        scores = []
        for ids in prompts:
            instruction, query, document = _PROMPT.search(self.builder.decode(ids)).groups()
            self.seen.append((instruction, query, document))
            scores.append(self.table[(query, document)])
        return scores

    async def ascore_prompts(self, prompts):
        return self.score_prompts(prompts)

    def close(self) -> None:
        pass


@pytest.fixture
def injected(prompt_builder, tokenizer_dir):
    backend = InjectedScores(prompt_builder)
    with Reranker(str(tokenizer_dir), backend=backend) as reranker:
        yield reranker, backend


# -- loading ----------------------------------------------------------------------------------------


def test_load_beir_reads_judged_queries_qrels_and_title_text():
    dataset = load_beir(MINI)
    assert dataset.name == "beir-mini" and dataset.split == "test"
    assert dict(dataset.queries) == {**QUERIES, "q4": "Who painted the Mona Lisa?"}  # q5 is judged in dev only
    assert {q: dict(d) for q, d in dataset.qrels.items()} == QRELS
    assert dict(dataset.corpus) == TEXTS


def test_load_beir_keeps_only_wanted_documents_and_other_splits():
    assert dict(load_beir(MINI, doc_ids={"d3", "d10"}).corpus) == {"d3": TEXTS["d3"], "d10": TEXTS["d10"]}
    dev = load_beir(MINI, "dev")
    assert dict(dev.queries) == {"q5": "Is a python a snake?"}


def test_load_beir_names_the_available_splits():
    with pytest.raises(FileNotFoundError, match=r"\['dev', 'test'\]"):
        load_beir(MINI, "train")


def test_read_trec_run_breaks_ties_like_trec_eval():
    run = read_trec_run(MINI / "first-stage.trec")
    # d1 and d3 both score 7.0: trec_eval puts the larger document id first.
    assert [d for d, _ in run["q1"]] == ["d4", "d2", "d3", "d1", "d10"]
    assert run["q2"] == (("d7", 5.0), ("d6", 4.0), ("d5", 3.0))


def test_trec_run_round_trips_scores_exactly(tmp_path):
    run = {"q1": (("d1", 1 / 3), ("d3", 0.1 + 0.2)), "q2": (("d5", 1e-300),)}
    path = write_trec_run(run, tmp_path / "run.trec")
    assert read_trec_run(path) == run


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("q1 Q0 d1 1 0.5\n", "6 fields"),
        ("q1 Q0 d1 1 high tag\n", "not a number"),
        ("q1 Q0 d1 1 0.5 t\nq1 Q0 d1 2 0.4 t\n", "appears twice"),
    ],
)
def test_read_trec_run_rejects_bad_lines(tmp_path, line, message):
    path = tmp_path / "bad.trec"
    path.write_text(line)
    with pytest.raises(ValueError, match=message):
        read_trec_run(path)


# -- metrics and reranking --------------------------------------------------------------------------


def test_first_stage_metrics_match_the_hand_derivation():
    report = evaluate_run(QRELS, read_trec_run(MINI / "first-stage.trec"), METRICS)
    # Written out by hand from first-stage.trec (q1: d4 d2 d3 d1 d10; q2: d7 d6 d5; q3: d8 d10).
    idcg_q1 = 2 / math.log2(2) + 1 / math.log2(3)
    assert report.per_query["q1"]["ndcg@10"] == pytest.approx((1 / math.log2(4) + 2 / math.log2(5)) / idcg_q1)
    assert report.per_query["q2"]["ndcg@10"] == pytest.approx((1 / math.log2(3) + 2 / math.log2(4)) / idcg_q1)
    assert report.per_query["q1"]["mrr@10"] == pytest.approx(1 / 3)
    assert report.per_query["q2"]["mrr@10"] == pytest.approx(1 / 2)
    assert report.per_query["q3"] == {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@10": 0.0, "recall@100": 0.0}
    assert report.overall["recall@10"] == pytest.approx(2 / 3)
    assert_report_matches(
        report, oracle({"q1": ["d4", "d2", "d3", "d1", "d10"], "q2": ["d7", "d6", "d5"], "q3": ["d8", "d10"]})
    )


def test_reranking_injected_scores_reproduces_the_hand_derived_metrics(injected):
    reranker, backend = injected
    report = evaluate_reranker(load_beir(MINI), reranker, read_trec_run(MINI / "first-stage.trec"), top_k=3)
    # Top 3 reranked, the rest below in first-stage order: q1's d1 scores 0.99 but sits below the cut.
    expected_after = {"q1": ["d3", "d4", "d2", "d1", "d10"], "q2": ["d5", "d6", "d7"], "q3": ["d8", "d10"]}
    assert {q: [d for d, _ in report.reranked_run[q]] for q in expected_after} == expected_after
    assert report.reranked_run["q1"] == (("d3", 0.9), ("d4", 0.2), ("d2", 0.1), ("d1", -1.0), ("d10", -2.0))
    idcg_q1 = 2 / math.log2(2) + 1 / math.log2(3)
    assert report.after.per_query["q1"]["ndcg@10"] == pytest.approx((1 + 2 / math.log2(5)) / idcg_q1)
    assert report.after.per_query["q2"] == {"ndcg@10": 1.0, "mrr@10": 1.0, "recall@10": 1.0, "recall@100": 1.0}
    assert_report_matches(report.after, oracle(expected_after))
    assert_report_matches(
        report.before, oracle({"q1": ["d4", "d2", "d3", "d1", "d10"], "q2": ["d7", "d6", "d5"], "q3": ["d8", "d10"]})
    )
    assert (report.queries_evaluated, report.queries_without_relevant, report.queries_missing_from_run) == (3, 1, 0)
    assert report.pairs_scored == len(backend.seen) == 3 + 3 + 2  # q4 (no relevant document) is not reranked
    assert {instruction for instruction, _, _ in backend.seen} == {DEFAULT_INSTRUCTION}


def test_the_instruction_reaches_every_prompt(injected):
    reranker, backend = injected
    report = evaluate_reranker(
        load_beir(MINI), reranker, read_trec_run(MINI / "first-stage.trec"), top_k=2, instruction="Find the answer"
    )
    assert report.instruction == "Find the answer"
    assert sorted(backend.seen) == sorted(
        ("Find the answer", QUERIES[q], TEXTS[d])
        for q, d in [("q1", "d4"), ("q1", "d2"), ("q2", "d7"), ("q2", "d6"), ("q3", "d8"), ("q3", "d10")]
    )


def test_the_tiny_model_ranking_gives_the_hand_derived_metrics(reference_reranker):
    """A real model (the tiny random one, transformers backend): the harness ranks by its scores."""
    dataset = load_beir(MINI)
    first_stage = read_trec_run(MINI / "first-stage.trec")
    report = evaluate_reranker(dataset, reference_reranker, first_stage, top_k=4, instruction="Judge relevance")
    expected: dict[str, list[str]] = {}
    for q in QUERIES:
        head = [d for d, _ in first_stage[q][:4]]
        scores = reference_reranker.score(QUERIES[q], [TEXTS[d] for d in head], instruction="Judge relevance")
        expected[q] = [d for d, _ in sorted(zip(head, scores, strict=True), key=cmp_to_key(best_first))]
        expected[q] += [d for d, _ in first_stage[q][4:]]
        # float32 scores move by ~1e-7 with the batch a prompt is padded into (here: all queries at once)
        reranked_scores = [s for _, s in report.reranked_run[q][: len(head)]]
        assert reranked_scores == pytest.approx(sorted(scores, reverse=True), abs=1e-6)
    assert {q: [d for d, _ in report.reranked_run[q]] for q in QUERIES} == expected
    assert_report_matches(report.after, oracle(expected))


def test_identical_ids_are_dropped_unless_kept(injected):
    reranker, _ = injected
    dataset = BeirDataset(
        name="self",
        split="test",
        queries=MappingProxyType({"d1": QUERIES["q1"]}),
        qrels=MappingProxyType({"d1": {"d3": 1}}),
        corpus=MappingProxyType(TEXTS),
    )
    table = reranker.backend.table
    table[(QUERIES["q1"], TEXTS["d1"])] = 1.0
    table[(QUERIES["q1"], TEXTS["d3"])] = 0.5
    first_stage = {"d1": (("d1", 2.0), ("d3", 1.0))}
    dropped = evaluate_reranker(dataset, reranker, first_stage, top_k=10)
    kept = evaluate_reranker(dataset, reranker, first_stage, top_k=10, ignore_identical_ids=False)
    assert [d for d, _ in dropped.reranked_run["d1"]] == ["d3"]
    assert dropped.after.overall["mrr@10"] == 1.0
    assert [d for d, _ in kept.reranked_run["d1"]] == ["d1", "d3"]
    assert kept.after.overall["mrr@10"] == 0.5


def test_a_query_the_first_stage_missed_scores_zero(injected):
    reranker, _ = injected
    first_stage = {"q1": (("d3", 1.0),)}  # nothing for q2 and q3
    report = evaluate_reranker(load_beir(MINI), reranker, first_stage, top_k=5)
    assert report.queries_missing_from_run == 2
    assert report.after.per_query["q2"]["ndcg@10"] == 0.0
    assert report.after.overall["recall@100"] == pytest.approx((1 / 2 + 0 + 0) / 3)


def test_rerank_run_rejects_a_document_the_corpus_lacks(injected):
    reranker, _ = injected
    with pytest.raises(ValueError, match=r"document 'd99'.*another dataset"):
        rerank_run(reranker, {"q1": QUERIES["q1"]}, TEXTS, {"q1": (("d99", 1.0),)})


def test_bm25_first_stage_ranks_only_matching_documents_best_first():
    run = bm25_run(TEXTS, {"q3": QUERIES["q3"], "stop": "the of a"}, depth=2)
    assert run["stop"] == ()  # stopwords only: nothing to match
    docs = [d for d, _ in run["q3"]]
    assert docs[0] == "d9"  # the only document with "memory" and "safety"
    assert len(docs) == 2 and docs[1] == "d8"  # "programming language", shorter than nothing else matching
    assert run["q3"][0][1] > run["q3"][1][1] > 0
    full = bm25_run(TEXTS, {"q3": QUERIES["q3"]}, depth=100)
    assert all(score > 0 for _, score in full["q3"])
    assert {d for d, _ in full["q3"]} <= {"d4", "d8", "d9"}  # d4 matches "known"


# -- instructions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected_start"),
    [
        ("arguana", "Given a claim, find documents that refute"),
        ("ArguAna", "Given a claim, find documents that refute"),
        ("trec-covid", "Given a query on COVID-19"),
        ("TRECCOVID", "Given a query on COVID-19"),
        ("webis-touche2020", "Given a question, retrieve detailed and persuasive"),
        ("Touche2020Retrieval.v3", "Given a question, retrieve detailed and persuasive"),
        ("cqadupstack/gaming", "Given a question, retrieve detailed question descriptions"),
        ("CQADupstackUnixRetrieval", "Given a question, retrieve detailed question descriptions"),
        ("ClimateFEVERHardNegatives", "Given a claim about climate change"),
        ("fiqa", "Given a financial question"),
        ("FiQA2018", "Given a financial question"),
        ("dbpedia-entity", "Given a query, retrieve relevant entity descriptions"),
    ],
)
def test_instruction_table(name, expected_start):
    task = instruction_for(name)
    assert task.known and task.instruction.startswith(expected_start)


def test_unknown_task_gets_the_default_instruction():
    task = instruction_for("beir-mini")
    assert not task.known and task.instruction == DEFAULT_INSTRUCTION


# -- the command ---------------------------------------------------------------------------------------


def test_eval_command_writes_the_run_and_the_report(tiny_model_dir, tmp_path, capfd, reference_reranker):
    from qwen3_rerank.cli import main

    out_run, report_path = tmp_path / "reranked.trec", tmp_path / "report.json"
    code = main(
        [
            "eval",
            str(MINI),
            "--run",
            str(MINI / "first-stage.trec"),
            "-k",
            "3",
            "-o",
            str(out_run),
            "--report",
            str(report_path),
            "--model",
            str(tiny_model_dir),
            "--backend",
            "transformers",
            "--dtype",
            "float32",
            "--instruction",
            "Judge relevance",
            "--no-progress",
        ]
    )
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["instruction"] == "Judge relevance" and report["queries_evaluated"] == 3
    run = read_trec_run(out_run)
    expected: dict[str, list[str]] = {}
    first_stage = read_trec_run(MINI / "first-stage.trec")
    for q in QUERIES:
        head = [d for d, _ in first_stage[q][:3]]
        scores = reference_reranker.score(QUERIES[q], [TEXTS[d] for d in head], instruction="Judge relevance")
        assert sorted(s for _, s in run[q][: len(head)]) == pytest.approx(sorted(scores), abs=1e-6)
        expected[q] = [d for d, _ in run[q]]
    hand = oracle(expected)
    for q in QUERIES:
        for metric in METRICS:
            assert report["per_query"][q][metric]["after"] == pytest.approx(hand[q][metric], abs=1e-12)
    out = capfd.readouterr().out
    assert out.splitlines()[0].split() == ["metric", "first", "stage", "reranked", "delta"]
    ndcg_line = next(line for line in out.splitlines() if line.startswith("NDCG@10"))
    assert float(ndcg_line.split()[2]) == pytest.approx(report["overall"]["ndcg@10"]["after"], abs=5e-5)


def test_eval_command_uses_the_task_table_and_bm25(tmp_path, capfd, tiny_model_dir):
    from qwen3_rerank.cli import main

    dataset = tmp_path / "scifact"
    dataset.mkdir()
    for name in ("corpus.jsonl", "queries.jsonl"):
        (dataset / name).write_text((MINI / name).read_text())
    (dataset / "qrels").mkdir()
    (dataset / "qrels" / "test.tsv").write_text((MINI / "qrels" / "test.tsv").read_text())
    code = main(
        [
            "eval",
            str(dataset),
            "--model",
            str(tiny_model_dir),
            "--backend",
            "transformers",
            "--no-progress",
            "-o",
            str(tmp_path / "out.trec"),
            "--save-first-stage",
            str(tmp_path / "bm25.trec"),
            "--report",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0
    assert "built-in, task 'scifact'" in capfd.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["instruction"] == instruction_for("scifact").instruction
    bm25 = read_trec_run(tmp_path / "bm25.trec")
    hand = oracle({q: [d for d, _ in bm25.get(q, ())] for q in QUERIES})
    for q in QUERIES:
        assert report["per_query"][q]["ndcg@10"]["before"] == pytest.approx(hand[q]["ndcg@10"], abs=1e-12)
