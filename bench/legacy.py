"""The "before" backend of the concurrent workload: the vLLM backend of git 773ecba (``vllm.LLM`` behind one
lock, before the async engine), taken from git history rather than kept as a copy.

    python bench/legacy.py          # writes .cache/bench/legacy_vllm_backend.py (needs the git history)

The GPU machine's copy of the tree has no ``.git``: run this here first and carry the written file
(``carry: [".cache/bench/legacy_vllm_backend.py"]``). Only the two package-relative imports change.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

COMMIT = "773ecba"
SOURCE = "src/qwen3_rerank/backends/vllm_backend.py"
ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / ".cache" / "bench" / "legacy_vllm_backend.py"
IMPORTS = {
    "from ..errors import": "from qwen3_rerank.errors import",
    "from .base import": "from qwen3_rerank.backends.base import",
}


def extract(dest: Path = DEST) -> Path:
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{COMMIT}:{SOURCE}"], check=True, capture_output=True, text=True
    ).stdout
    for old, new in IMPORTS.items():
        if old not in text:
            raise RuntimeError(f"{COMMIT}:{SOURCE} no longer has {old!r}; update bench/legacy.py")
        text = text.replace(old, new)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(f"# Extracted by bench/legacy.py from git {COMMIT}:{SOURCE}; do not edit.\n" + text)
    return dest


def load(path: Path = DEST) -> ModuleType:
    """The legacy module (extracted first if this checkout has the history and it is missing)."""
    if not path.exists():
        extract(path)
    spec = importlib.util.spec_from_file_location("legacy_vllm_backend", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    print(extract())
