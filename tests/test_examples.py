"""The core example runs as written (on the tiny model, without network)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_rerank_basics_example(tiny_model_dir: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "rerank_basics.py"),
            "--model",
            str(tiny_model_dir),
            "--backend",
            "transformers",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("scores, in input order: [")
    assert lines[1] == "best two:" and len([line for line in lines if line.startswith("  #")]) == 2
    assert sum(line.startswith("async ") for line in lines) == 3
