"""What runs a file-scoring plan: a runner turns the plan's blocks of rows into their scores, in input order.

The plan ([`ScoreFileJob`][qwen3_rerank.files.ScoreFileJob]) owns everything else: the manifest, resuming,
writing and joining, the progress bar. Two runners exist: [`LocalRunner`][qwen3_rerank.files.runner.LocalRunner]
here (one in-process [`Reranker`][qwen3_rerank.Reranker]) and
[`RayRunner`][qwen3_rerank.files.ray_runner.RayRunner] (a pool of Ray actors, one Reranker each).

A runner's contract: yield ``(block, scores)`` for every block it is given, in the order given; when a
block fails, raise the error with the row named ([`Block.name_rows`][qwen3_rerank.files.rows.Block.name_rows])
after yielding every block before it, so those are written and a rerun resumes after them.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import Qwen3RerankError
from .manifest import reranker_settings
from .rows import Block

if TYPE_CHECKING:
    from ..reranker import Reranker

__all__ = ["BlockRunner", "LocalRunner", "as_runner"]


@runtime_checkable
class BlockRunner(Protocol):
    """Scores a plan's blocks of rows; see the module's contract."""

    def manifest_settings(self) -> dict[str, Any] | None:
        """The run settings a partial output records ([`run_settings`][qwen3_rerank.files.run_settings]); None
        for a scorer that cannot say (a test double), which records nothing."""

    def score_blocks(self, blocks: Iterator[Block]) -> Generator[tuple[Block, Sequence[float]], None, None]:
        """``(block, its scores)`` for each block, in input order."""


class LocalRunner:
    """The local runner: each block scored in this process by one ``Reranker`` (or anything with its
    ``score_pairs``), one block at a time."""

    def __init__(self, reranker: Reranker) -> None:
        self.reranker = reranker

    def manifest_settings(self) -> dict[str, Any] | None:
        return reranker_settings(self.reranker)

    def score_blocks(self, blocks: Iterator[Block]) -> Generator[tuple[Block, Sequence[float]], None, None]:
        for block in blocks:
            try:
                scores = self.reranker.score_pairs(block.pairs)
            except Qwen3RerankError as exc:
                named = block.name_rows(exc)
                if named is exc:
                    raise
                raise named from exc
            yield block, scores


def as_runner(scorer: Reranker | BlockRunner) -> BlockRunner:
    """``scorer`` itself when it is a runner, else the local runner of it (a Reranker)."""
    return scorer if isinstance(scorer, BlockRunner) else LocalRunner(scorer)
