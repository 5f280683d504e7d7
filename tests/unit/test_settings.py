"""RerankerSettings is the one spelling of a reranker's settings: built, exposed, pickled and rebuilt as one."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import pytest

from qwen3_rerank import ChunkOptions, Qwen3RerankTypeError, Qwen3RerankValueError, Reranker, RerankerSettings

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


def test_every_way_of_making_settings_checks_them() -> None:
    """The checks live in the settings themselves, so Reranker.from_settings need not check again."""
    settings = RerankerSettings.create("some/model")
    with pytest.raises(Qwen3RerankValueError, match=r"^batch_size must be a positive int, got True"):
        RerankerSettings("some/model", batch_size=True)  # type: ignore[arg-type]
    with pytest.raises(Qwen3RerankValueError, match=r"^max_length must be a positive int \(tokens\), got 0"):
        dataclasses.replace(settings, max_length=0)
    with pytest.raises(Qwen3RerankValueError, match="backend must be 'vllm', 'transformers', 'server' or 'packed'"):
        RerankerSettings("some/model", backend="nope")  # type: ignore[arg-type]
    with pytest.raises(Qwen3RerankValueError, match=r"^long_documents must be 'truncate' or 'chunk', got 'chonk'"):
        ChunkOptions("chonk")  # type: ignore[arg-type]
    with pytest.raises(Qwen3RerankValueError, match=r"^chunk_tokens must be an int >= 8 or None, got 4"):
        dataclasses.replace(settings.chunking, chunk_tokens=4)
    with pytest.raises(Qwen3RerankValueError, match=r"^chunk_overlap=8 must be smaller than chunk_tokens=8"):
        ChunkOptions("chunk", 8, 8)
    with pytest.raises(Qwen3RerankTypeError, match=r"^engine_options must be a dict of option names to values"):
        RerankerSettings.create("some/model", engine_options=[("dtype", "float32")])  # type: ignore[arg-type]
    options = {"dtype": "float32"}
    made = RerankerSettings("some/model", backend="transformers", engine_options=options)
    assert made.engine_options == options and made.engine_options is not options  # never the caller's mapping


def test_the_reranker_takes_exactly_the_settings_keywords() -> None:
    """Reranker.__init__ spells RerankerSettings.create's keywords again (for IDEs and the API page): the
    same names, order, defaults and annotations, so the two cannot drift apart."""
    reranker = list(inspect.signature(Reranker.__init__).parameters.values())[1:]  # without self
    settings = list(inspect.signature(RerankerSettings.create).parameters.values())
    assert reranker == settings


def test_a_reranker_exposes_pickles_and_rebuilds_from_its_settings(tiny_model_dir, monkeypatch) -> None:
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
        monkeypatch.setattr(RerankerSettings, "create", None)  # from_settings and unpickling never re-check
        with pickle.loads(pickle.dumps(reranker)) as copy, Reranker.from_settings(settings) as twin:
            assert copy.settings == twin.settings == settings
            assert copy.score("q", ["a", "b"]) == twin.score("q", ["a", "b"]) == reranker.score("q", ["a", "b"])
