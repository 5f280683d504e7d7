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

# -- the vllm marker: derived from the fixtures a test uses -------------------------------------------------
#: fixtures that start (or hold) a vLLM engine or `vllm serve`. A test that uses one of them, directly or
#: through another fixture, gets the ``vllm`` marker; a test that starts vLLM itself is marked by hand.
VLLM_FIXTURES = frozenset({"vllm_reranker", "vllm_server", "vllm_server_launch"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if VLLM_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.vllm)


# -- CI: a heavy subsystem skipped because its import broke is a failure, not a skip ----------------------
# pytest.importorskip turns a broken install into quiet skips; in CI (CI=true, set by .ci/run) every extra
# is installed, so such a skip means the environment is broken and would hide whole test files.
HEAVY_SUBSYSTEMS = ("vllm", "ray", "llama_index", "langchain", "langchain_core", "httpx", "tenacity", "pyarrow")
_IMPORT_SKIPS: list[str] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _record_import_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if not (report.skipped and _in_ci()):
        return
    longrepr = report.longrepr
    reason = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)
    if "could not import" in reason and any(f"'{name}" in reason for name in HEAVY_SUBSYSTEMS):
        _IMPORT_SKIPS.append(f"{report.nodeid}: {reason}")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record_import_skip(report)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record_import_skip(report)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _IMPORT_SKIPS:
        terminalreporter.section("heavy subsystems skipped in CI (broken install)", red=True)
        for line in dict.fromkeys(_IMPORT_SKIPS):
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _IMPORT_SKIPS and session.exitstatus == 0:
        session.exitstatus = 1


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
