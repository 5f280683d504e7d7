"""The public surface is pinned: a change to it is a deliberate, reviewed change."""

from __future__ import annotations

import subprocess
import sys

import qwen3_rerank


def test_all_is_pinned() -> None:
    assert sorted(qwen3_rerank.__all__) == sorted([
        "BackendNotInstalledError", "DEFAULT_INSTRUCTION", "DEFAULT_MAX_LENGTH", "DEFAULT_MODEL", "DocumentChunk",
        "DocumentTooLongError", "EngineError", "ModelNotFoundError", "NO_TOKEN_ID", "NotAQwen3RerankerError",
        "PromptBuilder", "PromptTooLongError",
        "Qwen3RerankError", "RankedDocument", "Reranker", "ServerError", "YES_TOKEN_ID", "__version__",
        "canonical_prompt", "relevance_from_logits",
    ])
    for name in qwen3_rerank.__all__:
        assert hasattr(qwen3_rerank, name)
    assert (qwen3_rerank.YES_TOKEN_ID, qwen3_rerank.NO_TOKEN_ID) == (9693, 2152)


def test_importing_the_package_imports_no_engine() -> None:
    """A dependency-free core: vLLM, torch and transformers load only when a backend needs them."""
    code = "import sys, qwen3_rerank; print(sorted(m for m in ('vllm', 'torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
