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
