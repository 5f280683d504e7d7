"""Ranks within groups, added to a finished output: ``rank`` 1 for each group's best score, ties in input order.

A step after the join, so either runner's output can be ranked: it reads the output twice, block by
block, through its own row format (every column carried through verbatim), holding only each row's group
and score in memory, and replaces the output whole (a crash leaves the scored output as it was).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..errors import Qwen3RerankValueError
from .job import detect_format, row_format
from .output import clear_output
from .rows import Columns, row_label

__all__ = ["add_ranks"]


def add_ranks(
    output_path: str | Path,
    *,
    group_column: str = "query_id",
    rank_column: str = "rank",
    file_format: str = "auto",
    chunk_size: int = 4096,
    query_column: str = "query",
    document_column: str = "document",
    instruction_column: str = "instruction",
    score_column: str = "score",
) -> None:
    """Add ``rank_column`` to the scored file ``output_path``: each row's rank (1 = best) by
    ``score_column`` among the rows with its ``group_column`` value; equal scores keep input order, as
    [`Reranker.rank`][qwen3_rerank.Reranker.rank] does. The other arguments are those the file was scored with.
    An output that already has ``rank_column`` is left as it is (ranked by an earlier run).
    """
    output = Path(output_path)
    name = detect_format(output) if file_format == "auto" else file_format
    fmt = row_format(name, Columns(query_column, document_column, instruction_column, rank_column), integer_values=True)
    if rank_column in fmt.names(output):
        return  # ranked already (an input with that column is refused before scoring: see the CLI)
    fmt.check(output)
    groups: list[Any] = []
    scores: list[float] = []
    for block in fmt.read(output, 0, chunk_size)[1]:
        block_groups = fmt.column(output, block, group_column)
        for i, group in enumerate(block_groups):
            if group is None:
                raise Qwen3RerankValueError(
                    f"{output}: {row_label(block.first_row + i)} has no {group_column!r} to rank within "
                    "(--rank ranks the rows of each query_id)"
                )
        groups += block_groups
        scores += [float(s) for s in fmt.column(output, block, score_column)]
    rows_of: dict[Any, list[int]] = defaultdict(list)
    for row, group in enumerate(groups):
        rows_of[group].append(row)
    ranks = [0] * len(groups)
    for rows in rows_of.values():
        for rank, row in enumerate(sorted(rows, key=lambda r: -scores[r]), 1):  # a stable sort: ties in order
            ranks[row] = rank
    ranked = output.with_name(f".{output.name}.ranked{output.suffix}")
    parts = fmt.parts_dir(ranked)
    clear_output(ranked, parts)  # what an interrupted ranking left
    writer = fmt.writer(ranked, output, fresh=True)
    done = 0
    for block in fmt.read(output, 0, chunk_size)[1]:
        writer.write(block, ranks[done : done + len(block.pairs)])
        done += len(block.pairs)
    writer.finish()
    os.replace(ranked, output)
