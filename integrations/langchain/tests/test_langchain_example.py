"""examples/langchain_rerank.py runs as written (tiny model, transformers backend, offline)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langchain_rerank.py"


def test_langchain_example_runs(tiny_model_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--model", str(tiny_model_dir), "--backend", "transformers", "--top-n", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    top = lines.index("Qwen3-Reranker top 2:")
    assert len([line for line in lines[1:top] if line.startswith("  line-")]) == 6
    reranked = lines[top + 1 : top + 3]
    scores = [float(line.split()[1]) for line in reranked]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert "ainvoke gives the same ranking: True" in lines
    assert "CrossEncoderReranker agrees: True" in lines
    assert any(line.startswith("rerank(): best is line ") for line in lines)
