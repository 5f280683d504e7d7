"""The file-scoring plan: score a file of pairs one block of rows at a time, resumably, with any runner.

Streaming: rows are read, scored and written one block at a time, so memory stays bounded however large
the file. Resumable: the output only ever grows by whole blocks, each written in one write and synced
before the next; a rerun counts the complete rows already in the output (dropping a torn last row, if a
crash left one), checks they belong to this input and to these settings (the manifest
``OUTPUT.manifest.json``, kept while the output is partial), and scores only the rest. Who scores the
blocks is the runner's business ([`BlockRunner`][qwen3_rerank.files.runner.BlockRunner]): in this process,
or on Ray actors; the plan, the manifest, resuming and writing are the same for both.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import file_io
from ..errors import Qwen3RerankFileNotFoundError, Qwen3RerankValueError
from ..file_io import FORMATS, SUFFIX_FORMATS
from ..progress import progress
from ..validation import check_count
from .csv_rows import CsvFormat
from .jsonl import JsonlFormat
from .manifest import Manifest, check_same_settings
from .output import check_output, clear_output, is_stdout
from .rows import Block, Columns, RowFormat
from .runner import BlockRunner, as_runner

if TYPE_CHECKING:
    from ..reranker import Reranker

__all__ = ["FORMATS", "ScoreFileJob", "ScoreFileResult", "detect_format", "plan_score_file", "row_format", "score_file"]


@dataclass(frozen=True, slots=True)
class ScoreFileResult:
    """What a [`score_file()`][qwen3_rerank.files.score_file] call did."""

    output: Path
    format: str
    rows_total: int
    #: rows found complete in the output when the call started (resumed from there).
    rows_resumed: int
    #: rows scored by this call.
    rows_scored: int
    seconds: float


def detect_format(path: str | Path) -> str:
    """``jsonl``, ``csv`` or ``parquet`` from the file name's suffix."""
    return file_io.detect_format(path)


def row_format(name: str, cols: Columns, *, integer_values: bool = False) -> RowFormat:
    """The [`RowFormat`][qwen3_rerank.files.rows.RowFormat] called ``name``; ``integer_values``: the added
    column holds integers (a rank), not scores (Parquet types it ``int64``, not ``float64``)."""
    if name == "parquet":
        from .parquet import ParquetFormat  # needs pyarrow

        return ParquetFormat(cols, integer_values=integer_values)
    if name == "csv":
        return CsvFormat(cols)
    return JsonlFormat(cols)


def manifest_of(output: Path) -> Manifest:
    return Manifest(output.with_name(output.name + ".manifest.json"))


class ScoreFileJob:
    """A checked, resumable scoring job, made by [`plan_score_file()`][qwen3_rerank.files.plan_score_file].

    Planning does everything that needs no model (formats, columns, counting, repairing and checking a
    partial output and its settings), so a command can report bad input, or that nothing is left to do,
    before it starts an engine.
    """

    def __init__(
        self,
        fmt: RowFormat,
        input_path: Path,
        output_path: Path,
        total: int,
        done: int,
        blocks: Iterator[Block],
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self._fmt, self._blocks, self._settings = fmt, blocks, settings
        self.input_path, self.output_path = input_path, output_path
        #: rows in the input
        self.rows_total = total
        #: complete rows already in the output (the job resumes after them)
        self.rows_done = done

    @property
    def format(self) -> str:
        return str(self._fmt.name)

    @property
    def streaming(self) -> bool:
        """True when rows go to standard output (``-o -``): nothing to resume from."""
        return is_stdout(self.output_path)

    @property
    def finished(self) -> bool:
        """True when the output already holds every row."""
        return not self.streaming and self.rows_done == self.rows_total and self.output_path.exists()

    def run(self, scorer: Reranker | BlockRunner, *, show_progress: bool = False) -> ScoreFileResult:
        """Score the remaining rows, one block at a time, with ``scorer``: a runner, or a
        [`Reranker`][qwen3_rerank.Reranker] (the local runner). A job runs once.

        A block that fails stops the run with the error naming its row; the blocks before it are written,
        so a rerun resumes there.
        """
        runner = as_runner(scorer)
        started = time.perf_counter()
        manifest = None if self.streaming else manifest_of(self.output_path)
        if self.finished:
            if manifest is not None:
                manifest.remove()
            return ScoreFileResult(self.output_path, self.format, self.rows_total, self.rows_done, 0, 0.0)
        blocks, self._blocks = self._blocks, iter(())
        if manifest is not None and self._settings is not None:
            manifest.write(self._settings)  # before the first row: a crash leaves a resumable, labelled output
        writer = self._fmt.writer(self.output_path, self.input_path, fresh=self.rows_done == 0)
        rows_scored = 0
        with progress(self.rows_total, enabled=show_progress, desc="scoring", initial=self.rows_done) as bar:
            # closing: a runner's clean-up (its actors, say) runs even when writing fails.
            with contextlib.closing(runner.score_blocks(blocks)) as scored:
                for block, scores in scored:
                    writer.write(block, scores)
                    rows_scored += len(scores)
                    bar.update(len(scores))
            writer.finish()
        if manifest is not None:
            manifest.remove()  # the output is whole: nothing left to resume
        return ScoreFileResult(
            self.output_path, self.format, self.rows_total, self.rows_done, rows_scored, time.perf_counter() - started
        )


def plan_score_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    file_format: str = "auto",
    chunk_size: int = 4096,
    query_column: str = "query",
    document_column: str = "document",
    instruction_column: str = "instruction",
    score_column: str = "score",
    overwrite: bool = False,
    settings: Mapping[str, Any] | None = None,
) -> ScoreFileJob:
    """Check the input and any partial output, and return the job that scores the remaining rows.

    The arguments are those of [`score_file()`][qwen3_rerank.files.score_file]; ``settings`` (from
    [`run_settings()`][qwen3_rerank.files.run_settings]) are what the job will score with: a partial
    output scored with other settings is refused, naming the fields that differ. A torn last row of a
    partial output is cut off here.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    streaming = is_stdout(output_path)
    block_size = check_count(chunk_size, "chunk_size")  # the public name is older than "block"
    if not input_path.is_file():
        raise Qwen3RerankFileNotFoundError(f"{input_path} does not exist (or is not a file)")
    if not streaming:
        check_output(output_path)
        if output_path.exists() and output_path.resolve() == input_path.resolve():
            raise Qwen3RerankValueError("the output (--output) must be another file than the input")
    name = detect_format(input_path) if file_format == "auto" else file_format
    if name not in FORMATS:
        raise Qwen3RerankValueError(f"file_format must be 'auto' or one of {FORMATS}, got {file_format!r}")
    if streaming and name == "parquet":
        raise Qwen3RerankValueError(
            "Parquet cannot be streamed to standard output (its footer is written last); name an output file "
            "(--output scores.parquet)"
        )
    if file_format == "auto" and output_path.suffix.lower() in SUFFIX_FORMATS and detect_format(output_path) != name:
        raise Qwen3RerankValueError(
            f"the output {output_path} must have the input's format ({name}); converting between formats is "
            "not supported"
        )
    fmt = row_format(name, Columns(query_column, document_column, instruction_column, score_column))
    fmt.check(input_path)
    total = fmt.count(input_path)
    if streaming:
        blocks = fmt.read(input_path, 0, block_size)[1]
        return ScoreFileJob(fmt, input_path, output_path, total, 0, blocks)
    parts = fmt.parts_dir(output_path)
    manifest = manifest_of(output_path)
    if overwrite:
        clear_output(output_path, parts, manifest.path)
    started = output_path.exists() or (parts is not None and parts.exists())
    done, done_key = fmt.resume(output_path, input_path) if started else (0, None)
    if done > total:
        raise Qwen3RerankValueError(
            f"{output_path} already holds {done} rows, more than the {total} of {input_path}: it is not this "
            "input's output; pass --overwrite to replace it"
        )
    recorded = manifest.read()
    if done and done < total and recorded is not None and settings is not None:
        check_same_settings(
            recorded,
            settings,
            f"the partial output {output_path} ({done} of {total} rows)",
            "Rerun with those settings to resume it, or pass --overwrite to start over.",
        )
    input_key, blocks = fmt.read(input_path, done, block_size)
    if done_key is not None and done_key != input_key:
        raise Qwen3RerankValueError(
            f"row {done} of {output_path} is not row {done} of {input_path} (different query or document): the "
            "output belongs to another input; pass --overwrite to replace it, or choose another output"
        )
    return ScoreFileJob(fmt, input_path, output_path, total, done, blocks, settings)


def score_file(
    reranker: Reranker | BlockRunner,
    input_path: str | Path,
    output_path: str | Path,
    *,
    file_format: str = "auto",
    chunk_size: int = 4096,
    query_column: str = "query",
    document_column: str = "document",
    instruction_column: str = "instruction",
    score_column: str = "score",
    overwrite: bool = False,
    show_progress: bool = False,
) -> ScoreFileResult:
    """Score every (query, document) row of ``input_path`` into ``output_path``, resuming a partial output.

    Args:
        reranker: any [`Reranker`][qwen3_rerank.Reranker] (scored in this process), or a runner such as
            [`RayRunner`][qwen3_rerank.files.RayRunner] (scored on Ray actors, one Reranker each).
            Rows without an instruction get its instruction.
            A partial output scored by a reranker with other settings (model, backend, dtype, instruction,
            max_length, chunking, package version) is refused.
        input_path: a ``.jsonl``, ``.csv`` or ``.parquet`` file with ``query`` and ``document`` columns and
            optionally ``instruction``; every other column is carried through unchanged.
        output_path: the same format; each input row with a ``score`` column added, in input order. A
            regular file (resumed from); ``"-"`` (or ``/dev/stdout``) streams JSONL/CSV rows to
            ``sys.stdout`` instead, with nothing to resume; any other non-regular file is refused.
        file_format: ``"auto"`` (from the input's suffix), ``"jsonl"``, ``"csv"`` or ``"parquet"``.
        chunk_size: rows read, scored and written at a time (a block: memory, and work lost to a crash).
        query_column: the query column's name; ``document_column``, ``instruction_column`` likewise.
        score_column: the name of the added column; the input must not have one already.
        overwrite: start over instead of resuming from the rows already in ``output_path``.
        show_progress: a tqdm bar with pairs/s and the time left.
    """
    runner = as_runner(reranker)
    job = plan_score_file(
        input_path,
        output_path,
        file_format=file_format,
        chunk_size=chunk_size,
        query_column=query_column,
        document_column=document_column,
        instruction_column=instruction_column,
        score_column=score_column,
        overwrite=overwrite,
        settings=runner.manifest_settings(),
    )
    return job.run(runner, show_progress=show_progress)
