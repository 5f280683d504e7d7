"""RerankerSettings is the one spelling of a reranker's settings: built, exposed, pickled and rebuilt as one."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from qwen3_rerank import ChunkOptions, Qwen3RerankValueError, Reranker, RerankerSettings

FLOAT32 = {"dtype": "float32"}


def test_settings_are_frozen_and_checked() -> None:
    settings = RerankerSettings.create("some/model", backend="transformers", chunk_tokens=64, max_chunks=None)
    assert settings.chunking == ChunkOptions("truncate", 64, 0, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.model = "other"  # type: ignore[misc]
    with pytest.raises(Qwen3RerankValueError, match="batch_size must be a positive int"):
        RerankerSettings.create("some/model", batch_size=True)  # type: ignore[arg-type]
    with pytest.raises(Qwen3RerankValueError, match="backend must be 'vllm', 'transformers', 'server' or 'packed'"):
        settings.replace(backend="nope")
    assert settings.replace(max_chunks=3).chunking.max_chunks == 3
    assert RerankerSettings.create(**settings.keywords()) == settings


def test_a_reranker_exposes_pickles_and_rebuilds_from_its_settings(tiny_model_dir) -> None:
    with Reranker(str(tiny_model_dir), backend="transformers", engine_options=FLOAT32, chunk_overlap=4) as reranker:
        settings = reranker.settings
        assert (settings.model, settings.backend, settings.engine_options) == (
            str(tiny_model_dir),
            "transformers",
            FLOAT32,
        )
        assert reranker.chunking is settings.chunking and settings.chunking.chunk_overlap == 4
        with pytest.raises(AttributeError):
            reranker.settings = settings  # type: ignore[misc]
        view = reranker.with_options(long_documents="chunk")
        assert view.settings == dataclasses.replace(
            settings, chunking=dataclasses.replace(settings.chunking, long_documents="chunk")
        )
        assert reranker.settings.chunking.long_documents == "truncate"
        _, (pickled,) = reranker.__reduce__()
        assert pickled is settings
        with pickle.loads(pickle.dumps(reranker)) as copy, Reranker.from_settings(settings) as twin:
            assert copy.settings == twin.settings == settings
            assert copy.score("q", ["a", "b"]) == twin.score("q", ["a", "b"]) == reranker.score("q", ["a", "b"])
