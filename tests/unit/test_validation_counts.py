"""One check for every count (batch sizes, token budgets, limits): True is never a count, anywhere."""

from __future__ import annotations

import pytest

from qwen3_rerank import ChunkOptions, Qwen3RerankValueError, RerankerSettings
from qwen3_rerank.validation import check_count, check_optional_count


def test_the_one_count_check() -> None:
    np = pytest.importorskip("numpy")
    assert check_count(np.int64(3), "n") == 3 and type(check_count(np.int64(3), "n")) is int
    assert check_count(0, "n", minimum=0) == 0 and check_optional_count(None, "n") is None
    for bad in (True, False, 0, -1, 2.0, "3", None):
        with pytest.raises(Qwen3RerankValueError, match=r"n must be a positive int \(ids\), got"):
            check_count(bad, "n", note="ids")
    with pytest.raises(Qwen3RerankValueError, match="n must be an int >= 8 or None, got True"):
        check_optional_count(True, "n", minimum=8)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RerankerSettings.create("m", batch_size=True),
        lambda: RerankerSettings.create("m", max_length=True),
        lambda: ChunkOptions.create("chunk", max_chunks=True),
        lambda: ChunkOptions.create("chunk", chunk_overlap=True),
        lambda: __import__("qwen3_rerank.backends.vllm_admission").backends.vllm_admission.validate_max_in_flight(True),
        lambda: __import__("qwen3_rerank.backends.registry").backends.registry.check_engine_options(
            "transformers", {"batch_size": True}
        ),
    ],
)
def test_true_is_not_a_count(make) -> None:
    with pytest.raises(Qwen3RerankValueError, match=r"must be (a positive int|an int >= 0)"):
        make()


def test_the_transformers_backend_refuses_batch_size_true(tiny_model_dir) -> None:
    """Regression: TransformersBackend(batch_size=True) was accepted (True is an int) and scored one by one."""
    pytest.importorskip("torch")
    from qwen3_rerank.backends.transformers_backend import TransformersBackend

    with pytest.raises(Qwen3RerankValueError, match="batch_size must be a positive int, got True"):
        TransformersBackend(str(tiny_model_dir), batch_size=True)  # type: ignore[arg-type]


def test_the_packed_backend_checks_its_counts_with_the_one_check(tiny_model_dir) -> None:
    """Regression: the packed backend had its own count checks; they are check_count's now (same message)."""
    pytest.importorskip("torch")
    from qwen3_rerank.backends.packed_backend import PackedBackend

    for bad in (True, 0, -3, 2.0):
        with pytest.raises(
            Qwen3RerankValueError, match=r"^token_budget must be a positive int \(ids per forward\), got"
        ):
            PackedBackend(str(tiny_model_dir), device="cpu", token_budget=bad)  # type: ignore[arg-type]
        with pytest.raises(
            Qwen3RerankValueError,
            match=r"^max_batch_tokens must be a positive int or None \(prompt ids per round\), got",
        ):
            PackedBackend(str(tiny_model_dir), device="cpu", max_batch_tokens=bad)  # type: ignore[arg-type]


def test_packs_refuse_a_budget_that_is_not_a_count() -> None:
    from qwen3_rerank.backends.packing import pack_groups

    with pytest.raises(Qwen3RerankValueError, match=r"^token_budget must be a positive int \(ids per pack\), got True"):
        list(pack_groups([[1, 2]], [], True))  # type: ignore[arg-type]


def test_first_tokens_checks_its_count_with_the_one_check() -> None:
    from qwen3_rerank.adapter_support import first_tokens

    for bad in (True, 0, 7, 8.0, "8"):
        with pytest.raises(
            Qwen3RerankValueError, match=r"^max_tokens_per_doc must be an int >= 8 or None \(documents are cut"
        ):
            first_tokens(None, ["a text"], bad, "max_tokens_per_doc")  # type: ignore[arg-type]
    assert first_tokens(None, ["a text"], None) == ["a text"]  # type: ignore[arg-type]  # None: no cut


def test_bm25_depth_is_a_count() -> None:
    from qwen3_rerank.evaluation import bm25_run

    for bad in (True, 0):
        with pytest.raises(Qwen3RerankValueError, match=r"^depth must be a positive int \(documents per query\), got"):
            bm25_run({"d": "text"}, {"q": "text"}, depth=bad)


@pytest.mark.parametrize(("flag", "value"), [("--top-k", "0"), ("--bm25-depth", "-1")])
def test_the_eval_command_checks_its_counts(flag, value, capfd) -> None:
    from qwen3_rerank.cli import main

    assert main(["eval", "tests/fixtures/beir-mini", flag, value, "--no-progress"]) == 2
    assert f"{flag} must be a positive int (documents" in capfd.readouterr().err


def test_top_n_bounds_are_the_count_check() -> None:
    from qwen3_rerank.validation import check_top_n

    assert check_top_n(None) is None and check_top_n(3) == 3
    for bad in (0, -2):
        with pytest.raises(Qwen3RerankValueError, match=r"^top_n must be a positive int \(or None for all documents\)"):
            check_top_n(bad)
