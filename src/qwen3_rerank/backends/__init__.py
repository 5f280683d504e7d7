"""Scoring backends. Each module imports its heavy dependency only when used."""

from .base import ScoringBackend

__all__ = ["ScoringBackend"]
