"""mypy's configuration keeps a missing module of ours an error (a global ignore once hid an import of a
removed module)."""

from __future__ import annotations

import tomllib

from paths import REPO

OURS = ("qwen3_rerank", "langchain_qwen3_rerank", "llama_index.postprocessor.qwen3_rerank")


def _mypy() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]


def test_missing_imports_are_errors_except_for_listed_third_party_packages() -> None:
    config = _mypy()
    assert config.get("ignore_missing_imports", False) is False
    for override in config.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        if override.get("ignore_missing_imports"):
            for pattern in modules:
                prefix = pattern.removesuffix(".*")
                assert not any(
                    ours == prefix or ours.startswith(prefix + ".") or prefix.startswith(ours) for ours in OURS
                ), f"{pattern} would hide a missing module of ours"
