"""The core example runs as written (on the tiny model, without network)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO


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


@pytest.mark.parametrize("backend", ["transformers", "packed"])
def test_long_documents_example(tiny_model_dir: Path, backend: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "long_documents.py"),
            "--model",
            str(tiny_model_dir),
            "--backend",
            backend,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    first, *hits = proc.stdout.splitlines()
    assert first.startswith("truncate: [")
    # Every document comes back once; the long page is cut into several chunks, the short ones are one.
    assert sorted(line.split()[0] for line in hits) == ["#0", "#1", "#2"]
    chunks = {line.split()[0]: int(line.split("best of ")[1].split()[0]) for line in hits}
    assert chunks["#0"] > 1 and chunks["#1"] == chunks["#2"] == 1
