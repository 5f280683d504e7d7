"""Score a file of (query, document) pairs on a Ray cluster, restartably.

The driver reads and checks the pairs, cuts them into deterministic shards, and hands the shards not
yet finished to Ray Data, whose actors (one [`Reranker`][qwen3_rerank.Reranker] each, one GPU each when
there are GPUs) score them. Only ids and scores come back; the driver checks each shard's ids against
the input, writes the shard atomically, and when every shard is done, joins them into the output.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.registry import needs_gpu
from ..chunking import ChunkOptions
from ..errors import BackendNotInstalledError, EngineError
from ..files.manifest import run_settings
from ..prompt import DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH
from ..validation import check_optional_count
from .pairs import ID_COLUMNS, file_format, import_pyarrow, read_pairs, write_atomically
from .scorer import ShardScorer, forwarded_environment
from .shards import Shard, WorkDir, plan_shards

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["BatchSummary", "run_batch_job"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSummary:
    """What a batch job did. ``complete`` is True when ``output`` holds a score for every input pair."""

    input: str
    output: str | None
    pairs: int
    shards: int
    pairs_scored: int
    shards_scored: int
    shards_skipped: int
    #: (shard id, error) for each shard that failed in this run; rerun the job to retry them.
    failures: tuple[tuple[str, str], ...] = field(default=())
    seconds: float = 0.0
    actors: int = 0

    @property
    def complete(self) -> bool:
        return self.output is not None

    @property
    def pairs_per_second(self) -> float:
        return self.pairs_scored / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        lines = [
            f"pairs: {self.pairs} in {self.shards} shards; scored now: {self.pairs_scored} pairs "
            f"({self.shards_scored} shards) on {self.actors} actor(s) in {self.seconds:.1f} s = "
            f"{self.pairs_per_second:.1f} pairs/s; finished before: {self.shards_skipped} shards",
            f"failures: {len(self.failures)} shard(s)",
        ]
        lines += [f"  {shard}: {error}" for shard, error in self.failures[:20]]
        if self.complete:
            lines.append(f"output: {self.output}")
        else:
            lines.append("output: not written (shards failed); rerun the same command to retry only those")
        return "\n".join(lines)


def _default_gpus(backend: str, ray: Any) -> float:
    if not needs_gpu(backend):  # the backend table says which backends want a GPU (vllm, packed)
        return 0
    return 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0


def run_batch_job(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    model: str,
    backend: str = "vllm",
    engine_options: Mapping[str, Any] | None = None,
    instruction: str = DEFAULT_INSTRUCTION,
    max_length: int = DEFAULT_MAX_LENGTH,
    shard_size: int = 10_000,
    batch_size: int = 4096,
    num_actors: int | None = None,
    gpus_per_actor: float | None = None,
    cpus_per_actor: float = 1,
    rank: bool = False,
    input_format: str | None = None,
    output_format: str | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    on_shard_done: Callable[[str, int], None] | None = None,
    long_documents: str = "truncate",
    chunk_tokens: int | None = None,
    chunk_overlap: int = 0,
    max_chunks: int | None = 64,
) -> BatchSummary:
    """Score every pair of ``input_path`` and write ``query_id, doc_id, score`` (and ``rank``) to ``output_path``.

    Args:
        model, backend, engine_options, instruction, max_length, batch_size: as for
            [`Reranker`][qwen3_rerank.Reranker], one per actor. A row's ``instruction`` column overrides
            ``instruction`` for that pair.
        shard_size: pairs per shard: the unit of restart, progress and failure.
        num_actors: scoring actors (engines); default one per GPU of the cluster, else 1.
        gpus_per_actor: default 1 for backend ``vllm`` on a cluster with GPUs, else 0.
        cpus_per_actor: CPUs each actor reserves.
        rank: add ``rank`` (1 = best) within each query_id; ties keep input order.
        work_dir: where finished shards live (default ``<output>.shards``); a rerun with the same
            settings resumes from it, scoring only shards that have no file there yet.
        ray_address: cluster to join (``"auto"``, ``"ray://host:10001"``); default: the running one,
            ``RAY_ADDRESS``, or a local Ray started (and stopped) here.
        on_shard_done: called with (shard id, pairs) after each shard is written.
        long_documents, chunk_tokens, chunk_overlap, max_chunks: as for [`Reranker`][qwen3_rerank.Reranker];
            in chunk mode a shard with a document that needs more than max_chunks fails (and says so).

    Returns a [`BatchSummary`][qwen3_rerank.batch.job.BatchSummary]; ``output`` is None when shards failed (their errors
    are listed).
    """
    num_actors = check_optional_count(num_actors, "num_actors", note="None: one per GPU of the cluster, else 1")
    chunking = ChunkOptions.create(long_documents, chunk_tokens, chunk_overlap, max_chunks)
    pa = import_pyarrow()
    started = time.perf_counter()
    output_path = Path(output_path)
    out_format = file_format(output_path, output_format)
    table = read_pairs(input_path, input_format)
    # The run settings every file-scoring manifest records (the local runner's too), plus the shard size.
    settings: dict[str, Any] = run_settings(
        model=model,
        backend=backend,
        dtype=(engine_options or {}).get("dtype"),
        instruction=instruction,
        max_length=max_length,
        chunking=chunking,
    )
    settings["shard_size"] = shard_size
    shards = plan_shards(table, shard_size, settings)
    work = WorkDir(work_dir if work_dir is not None else output_path.with_name(output_path.name + ".shards"), settings)
    pending = [s for s in shards if not work.finished(s)]
    logger.info("%d pairs in %d shards, %d already finished", table.num_rows, len(shards), len(shards) - len(pending))

    failures: dict[str, str] = {}
    actors = 0
    if pending:
        actors, failures = _score_shards(
            table,
            pending,
            work,
            scorer_kwargs={
                "model": model,
                "backend": backend,
                "engine_options": dict(engine_options or {}),
                "instruction": instruction,
                "max_length": max_length,
                "batch_size": batch_size,
                "environment": forwarded_environment(),
                "chunking": dataclasses.asdict(chunking),
            },
            num_actors=num_actors,
            gpus_per_actor=gpus_per_actor,
            cpus_per_actor=cpus_per_actor,
            ray_address=ray_address,
            progress=progress,
            on_shard_done=on_shard_done,
        )
    scored = [s for s in pending if s.id not in failures and work.finished(s)]
    output = None
    if all(work.finished(s) for s in shards):
        _write_output(table, shards, work, output_path, out_format, rank=rank, pa=pa)
        output = str(output_path)
    return BatchSummary(
        input=str(input_path),
        output=output,
        pairs=table.num_rows,
        shards=len(shards),
        pairs_scored=sum(s.rows for s in scored),
        shards_scored=len(scored),
        shards_skipped=len(shards) - len(pending),
        failures=tuple(sorted(failures.items())),
        seconds=time.perf_counter() - started,
        actors=actors,
    )


def _score_shards(
    table: pa.Table,
    pending: list[Shard],
    work: WorkDir,
    *,
    scorer_kwargs: dict[str, Any],
    num_actors: int | None,
    gpus_per_actor: float | None,
    cpus_per_actor: float,
    ray_address: str | None,
    progress: bool,
    on_shard_done: Callable[[str, int], None] | None,
) -> tuple[int, dict[str, str]]:
    pa = import_pyarrow()
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise BackendNotInstalledError("Batch jobs need Ray Data: pip install qwen3-rerank[ray]") from exc
    from tqdm.auto import tqdm

    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=ray_address, log_to_driver=progress)
    try:
        if gpus_per_actor is None:
            gpus_per_actor = _default_gpus(scorer_kwargs["backend"], ray)
        if num_actors is None:
            gpus = ray.cluster_resources().get("GPU", 0)
            num_actors = max(1, int(gpus // gpus_per_actor)) if gpus_per_actor else 1
        num_actors = min(num_actors, len(pending))  # an actor without a shard would only load a model
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress
        by_id = {s.id: s for s in pending}
        blocks = []
        for shard in pending:
            block = table.slice(shard.start, shard.rows)
            block = block.append_column("_shard", pa.array([shard.id] * shard.rows, pa.string()))
            blocks.append(block.append_column("_row", pa.array(range(shard.start, shard.stop), pa.int64())))
        dataset = ray.data.from_arrow(blocks).map_batches(
            ShardScorer,
            fn_constructor_kwargs=scorer_kwargs,
            batch_size=None,  # one block, i.e. one shard, per call
            batch_format="pyarrow",
            zero_copy_batch=True,
            compute=ray.data.ActorPoolStrategy(size=num_actors),
            num_cpus=cpus_per_actor,
            num_gpus=gpus_per_actor,
        )
        received: dict[str, list[Any]] = defaultdict(list)  # pyarrow tables
        counts: dict[str, int] = defaultdict(int)
        failures: dict[str, str] = {}
        bar = tqdm(total=sum(s.rows for s in pending), unit="pair", desc="scoring", disable=not progress)
        try:
            batch: Any
            for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                for shard_id in batch.column("_shard").unique().to_pylist():
                    part = batch.filter(pa.compute.equal(batch.column("_shard"), shard_id))
                    shard = by_id[shard_id]
                    errors = part.column("_error").drop_null()
                    if len(errors):
                        failures[shard_id] = errors[0].as_py()
                    received[shard_id].append(part)
                    counts[shard_id] += part.num_rows
                    if counts[shard_id] > shard.rows:
                        raise EngineError(f"shard {shard_id} came back with {counts[shard_id]} rows for {shard.rows}")
                    if counts[shard_id] == shard.rows:
                        parts = received.pop(shard_id)
                        if shard_id not in failures:
                            _write_shard(table, shard, pa.concat_tables(parts), work)
                            if on_shard_done is not None:
                                on_shard_done(shard_id, shard.rows)
                        bar.update(shard.rows)
        except Exception as exc:
            if isinstance(exc, EngineError | ValueError):
                raise
            raise EngineError(f"the batch job's Ray execution failed: {_first_line(exc)}") from exc
        finally:
            bar.close()
        missing = [s.id for s in pending if s.id not in failures and not work.finished(s)]
        for shard_id in missing:
            failures[shard_id] = "no result came back for this shard"
        return num_actors, failures
    finally:
        if started_ray:
            ray.shutdown()


def _write_shard(table: pa.Table, shard: Shard, scored: pa.Table, work: WorkDir) -> None:
    """Check the scored rows are exactly the shard's pairs, in input order, then write them."""
    import pyarrow.compute as pc

    scored = scored.sort_by("_row")
    expected = table.slice(shard.start, shard.rows)
    rows = scored.column("_row").to_pylist()
    if rows != list(range(shard.start, shard.stop)):
        raise EngineError(f"shard {shard.id} came back with the wrong rows; please report this bug")
    for name in ID_COLUMNS:
        if not scored.column(name).cast(expected.column(name).type).equals(expected.column(name)):
            raise EngineError(f"shard {shard.id}: {name}s came back out of place; please report this bug")
    scores = scored.column("score")
    if scores.null_count or not pc.all(pc.and_(pc.greater_equal(scores, 0), pc.less_equal(scores, 1))).as_py():
        raise EngineError(f"shard {shard.id} came back with missing or invalid scores")
    write_atomically(scored.select([*ID_COLUMNS, "score"]), work.part(shard), "parquet")


def _write_output(
    table: pa.Table, shards: list[Shard], work: WorkDir, output: Path, fmt: str, *, rank: bool, pa: Any
) -> None:
    import pyarrow.parquet as pq

    merged = pa.concat_tables([pq.read_table(work.part(s)) for s in shards], promote_options="permissive")
    if merged.num_rows != table.num_rows:
        raise EngineError(f"the shards hold {merged.num_rows} rows for {table.num_rows} input pairs")
    for name in ID_COLUMNS:
        if not merged.column(name).cast(table.column(name).type).equals(table.column(name)):
            raise EngineError(f"the finished shards' {name}s do not match the input; delete {work.path} and rerun")
    merged = pa.table({name: table.column(name) for name in ID_COLUMNS} | {"score": merged.column("score")})
    if rank:
        frame = merged.to_pandas()
        # method="first": equal scores keep input order, as Reranker.rank does.
        ranks = frame.groupby("query_id", sort=False)["score"].rank(method="first", ascending=False)
        merged = merged.append_column("rank", pa.array(ranks.astype("int64").to_numpy()))
    write_atomically(merged, output, fmt)


def _first_line(exc: BaseException) -> str:
    """The user's error inside a Ray failure: the last ``SomeError: message`` line of its report."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.findall(r"^([\w.]*(?:Error|Exception)): (.+)$", text, flags=re.MULTILINE)
    if found:
        name, message = found[-1]
        return f"{name.rsplit('.', 1)[-1]}: {message}"
    lines = text.strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
