"""The Ray runner: a file-scoring plan's blocks of rows scored by a pool of Ray actors, one Reranker each.

Needs ``pip install qwen3-rerank[ray]``; Ray is imported only when a run starts.

Ray core actors, not Ray Data: Ray Data pipelines a Dataset, whose source Ray must read itself (a table
loaded into the driver, or Ray's own file readers). The plan's source is its row formats, read lazily by
the driver: they resume after the rows already written, carry every column through verbatim and name a
bad row by its line. So the driver reads the plan's blocks one at a time, sends only each block's pairs
to an actor, and keeps the rows until their scores come back; at most ``window_per_actor`` blocks per
actor are in flight (each actor always has its next block queued), so the driver holds that many blocks
however large the file. Scores are handed back, and written, strictly in input order.

A block that fails (a prompt too long, an engine error, an actor that died) stops the run with the error
naming its row; the blocks before it have been written, and rerunning the same command resumes after them.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from typing import Any

from ..backends.registry import needs_gpu
from ..errors import BackendNotInstalledError, EngineError, Qwen3RerankError, Qwen3RerankValueError
from ..settings import RerankerSettings
from ..validation import check_count, check_optional_count
from .manifest import settings_record
from .rows import Block

__all__ = ["BlockScorer", "RayRunner", "default_gpus_per_actor", "forwarded_environment"]

# Engine settings a driver's environment carries to actors on other nodes (Ray starts them afresh).
_FORWARDED_PREFIXES = ("VLLM_", "HF_", "NCCL_", "TOKENIZERS_PARALLELISM")


def forwarded_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES)}


def default_gpus_per_actor(backend: str, ray: Any) -> float:
    """1 for a backend that wants a GPU (vllm, packed: the backend table says) on a cluster with GPUs, else 0."""
    if not needs_gpu(backend):
        return 0
    return 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0


class BlockScorer:
    """The actor: one [`Reranker`][qwen3_rerank.Reranker] (one engine), built from the run's settings.

    A deliberate error (a model that cannot load, a prompt too long) comes back as the answer, not as a
    Ray failure, so the driver raises the very error the local runner would.
    """

    def __init__(self, settings: RerankerSettings, environment: dict[str, str]) -> None:
        for key, value in environment.items():
            os.environ.setdefault(key, value)
        from ..reranker import Reranker

        self.reranker: Reranker | None = None
        self.error: Qwen3RerankError | None = None
        try:
            self.reranker = Reranker.from_settings(settings)
        except Qwen3RerankError as exc:
            self.error = exc

    def score(self, pairs: list[Any]) -> list[float] | Qwen3RerankError:
        if self.reranker is None:
            assert self.error is not None
            return self.error
        try:
            return list(self.reranker.score_pairs(pairs))
        except Qwen3RerankError as exc:
            return exc

    def close(self) -> None:
        if self.reranker is not None:
            self.reranker.close()


class RayRunner:
    """Scores a plan's blocks on Ray actors; pass it where a [`Reranker`][qwen3_rerank.Reranker] goes in
    [`score_file`][qwen3_rerank.files.score_file] or [`ScoreFileJob.run`][qwen3_rerank.files.ScoreFileJob.run].

    Args:
        settings: what each actor's reranker is built from (a backend by name: an object cannot travel).
        actors: how many actors (engines); default one per GPU of the cluster when each takes a GPU, else 1.
            Actors start as the first blocks arrive, so a file of one block starts one.
        gpus_per_actor: default 1 for the vllm and packed backends on a cluster with GPUs, else 0.
        cpus_per_actor: CPUs each actor reserves.
        ray_address: the cluster to join (``"auto"``, ``"ray://host:10001"``); default: the Ray already
            initialised here, ``RAY_ADDRESS``, or a local Ray started (and stopped) for the run.
        window_per_actor: blocks in flight per actor; the driver holds at most ``actors * window_per_actor``.
        log_to_driver: show the actors' output here.
    """

    def __init__(
        self,
        settings: RerankerSettings,
        *,
        actors: int | None = None,
        gpus_per_actor: float | None = None,
        cpus_per_actor: float = 1,
        ray_address: str | None = None,
        window_per_actor: int = 2,
        log_to_driver: bool = True,
    ) -> None:
        if not isinstance(settings, RerankerSettings):
            raise Qwen3RerankValueError(f"settings must be a RerankerSettings, got {type(settings).__name__}")
        if not isinstance(settings.backend, str):
            raise Qwen3RerankValueError(
                "the Ray runner builds a reranker in each actor from its settings: name the backend "
                "(backend='vllm', ...), a ScoringBackend object cannot travel to an actor"
            )
        self.settings = settings
        self.actors = check_optional_count(actors, "actors", note="None: one per GPU of the cluster, else 1")
        for name, value in (("gpus_per_actor", gpus_per_actor), ("cpus_per_actor", cpus_per_actor)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
                raise Qwen3RerankValueError(f"{name} must be a number >= 0, got {value!r}")
        self.gpus_per_actor, self.cpus_per_actor = gpus_per_actor, cpus_per_actor
        self.ray_address = ray_address
        self.window_per_actor = check_count(window_per_actor, "window_per_actor")
        self.log_to_driver = log_to_driver
        #: actors started by the last run (for its report)
        self.actors_started = 0

    def manifest_settings(self) -> dict[str, Any]:
        return settings_record(self.settings)

    def score_blocks(self, blocks: Iterator[Block]) -> Generator[tuple[Block, Sequence[float]], None, None]:
        try:
            import ray
        except ImportError as exc:
            raise BackendNotInstalledError("The Ray runner needs Ray: pip install qwen3-rerank[ray]") from exc
        started_ray = not ray.is_initialized()
        if started_ray:
            ray.init(address=self.ray_address, log_to_driver=self.log_to_driver)
        actors: list[Any] = []
        try:
            gpus = self.gpus_per_actor
            if gpus is None:
                gpus = default_gpus_per_actor(str(self.settings.backend), ray)
            count = self.actors
            if count is None:
                count = max(1, int(ray.cluster_resources().get("GPU", 0) // gpus)) if gpus else 1
            actor_class = ray.remote(num_cpus=self.cpus_per_actor, num_gpus=gpus)(BlockScorer)
            environment = forwarded_environment()
            window = count * self.window_per_actor
            in_flight: deque[tuple[Block, Any]] = deque()
            for number, block in enumerate(blocks):
                if len(actors) < count:
                    actors.append(actor_class.remote(self.settings, environment))
                    self.actors_started = len(actors)
                # Round robin with a window that is a multiple of the actor count: the block sent when the
                # oldest comes back goes to the actor that just finished it.
                in_flight.append((block, actors[number % count].score.remote(block.pairs)))
                if len(in_flight) == window:
                    yield _result(ray, *in_flight.popleft())
            while in_flight:
                yield _result(ray, *in_flight.popleft())
        finally:
            _stop(ray, actors)
            if started_ray:
                ray.shutdown()


def _result(ray: Any, block: Block, answer: Any) -> tuple[Block, Sequence[float]]:
    last = block.first_row + len(block.pairs) - 1
    try:
        scores = ray.get(answer)
    except ray.exceptions.RayError as exc:
        raise EngineError(
            f"the Ray actor scoring rows {block.first_row}-{last} failed: {_first_line(exc)}; the rows before "
            "them are written: rerun the same command to resume"
        ) from exc
    if isinstance(scores, Qwen3RerankError):
        raise block.name_rows(scores)
    if len(scores) != len(block.pairs):
        raise EngineError(f"rows {block.first_row}-{last} came back with {len(scores)} scores; please report this bug")
    return block, scores


def _stop(ray: Any, actors: list[Any]) -> None:
    """Close each actor's engine (a vLLM engine has processes of its own), then end the actors."""
    with contextlib.suppress(Exception):  # an actor that died or hangs is ended below all the same
        ray.get([actor.close.remote() for actor in actors], timeout=120)
    for actor in actors:
        ray.kill(actor)


def _first_line(exc: BaseException) -> str:
    """The user's error inside a Ray failure: the last ``SomeError: message`` line of its report."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.findall(r"^([\w.]*(?:Error|Exception)): (.+)$", text, flags=re.MULTILINE)
    if found:
        name, message = found[-1]
        return f"{name.rsplit('.', 1)[-1]}: {message}"
    lines = text.strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
