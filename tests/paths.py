"""Where the tests find the repository and their fixtures, however deep a test module sits."""

from __future__ import annotations

from pathlib import Path

__all__ = ["FIXTURES", "REPO"]

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
