"""Fixtures shared by the core tests (tests/) and the adapters' tests (integrations/*/tests).

The model is a tiny random-weight Qwen3 with the real Qwen3 tokenizer, built once per session; one
vLLM engine serves the whole session (an engine start costs 25-60 s on two cores).
"""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports vLLM: a small CPU KV cache, no network, no usage reports.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

REPO = Path(__file__).resolve().parent
TOKENIZER_DIR = REPO / "tests" / "fixtures" / "qwen3-tokenizer"
#: vLLM and the reference agree in float32; these options are what every test engine uses.
TEST_ENGINE_OPTIONS = {"dtype": "float32"}


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    return TOKENIZER_DIR


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from qwen3_rerank.random_checkpoint import write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp("tiny-qwen3-reranker"), TOKENIZER_DIR, shape="tiny")


@pytest.fixture(scope="session")
def prompt_builder():
    from qwen3_rerank import PromptBuilder

    return PromptBuilder.from_pretrained(str(TOKENIZER_DIR))


@pytest.fixture(scope="session")
def reference_reranker(tiny_model_dir: Path):
    """The transformers backend in float32: the reference every other path must match."""
    from qwen3_rerank import Reranker

    with Reranker(str(tiny_model_dir), backend="transformers", engine_options={"dtype": "float32"}) as reranker:
        yield reranker


@pytest.fixture(scope="session")
def vllm_reranker(tiny_model_dir: Path):
    """The default backend on the tiny model; its engine is shared by the whole session."""
    pytest.importorskip("vllm")
    from qwen3_rerank import Reranker

    with Reranker(str(tiny_model_dir), engine_options=TEST_ENGINE_OPTIONS) as reranker:
        yield reranker
