"""Faults: inputs longer than the context, out of memory, engine errors, interrupts and a dying engine.

Each fault ends in complete, correct scores or in one clear error, and the reranker stays usable.
Everything but the engine-death tests runs on the session engine, with the fault injected around it.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from qwen3_rerank import EngineError, Reranker

pytestmark = pytest.mark.vllm

QUERY = "what makes cats purr"
DOCS = [
    f"Document {i}: cats purr {'and purr ' * (i % 7)}when they feel {('content', 'safe')[i % 2]}." for i in range(40)
]


@pytest.fixture(scope="module")
def expected(vllm_reranker) -> list[float]:
    return vllm_reranker.score(QUERY, DOCS)


class EncodeSpy:
    """Wraps the session engine's public ``AsyncLLM.encode``: records every request by the group of
    prompts it was submitted with (our request ids are ``<call>-g<group>-<index>``), and raises what
    ``fail(index_in_group)`` returns instead of submitting it."""

    def __init__(self) -> None:
        self.groups: dict[str, list[list[int]]] = {}
        self.fail = lambda index: None

    @property
    def calls(self) -> list[list[list[int]]]:
        return list(self.groups.values())

    def clear(self) -> None:
        self.groups.clear()


@pytest.fixture
def encode_spy(vllm_reranker, monkeypatch):
    engine = vllm_reranker.backend.engine
    real = engine.encode
    spy = EncodeSpy()

    def encode(prompt, params, request_id, *args, **kwargs):
        group, index = request_id.rsplit("-", 1)
        spy.groups.setdefault(group, []).append(list(prompt["prompt_token_ids"]))
        error = spy.fail(int(index))
        if error is not None:
            raise error
        return real(prompt, params, request_id, *args, **kwargs)

    monkeypatch.setattr(engine, "encode", encode)
    # The out-of-memory cap is per backend; leave the session backend as it was.
    monkeypatch.setattr(vllm_reranker.backend, "_oom_cap", None)
    yield spy


def assert_engine_idle(vllm_reranker) -> None:
    assert vllm_reranker.backend.engine.get_num_unfinished_requests() == 0
    assert vllm_reranker.backend.in_flight_prompts == 0


# -- inputs longer than the context ------------------------------------------------------------------


def test_max_length_above_the_engine_context_fails_at_construction(tiny_model_dir) -> None:
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"max_model_len=4096 is below max_length=8192"):
        Reranker(str(tiny_model_dir), engine_options={"dtype": "float32", "max_model_len": 4096})
    assert time.monotonic() - started < 10  # refused before any engine starts


@pytest.mark.parametrize("backend", ["vllm", "transformers"])
def test_max_length_above_the_model_context_fails_before_loading(tiny_model_dir, backend) -> None:
    """Regression: vLLM used to start for ~30 s, then fail with "1 validation error for ModelConfig"."""
    with pytest.raises(ValueError, match=r"max_length=50000 exceeds the model's context of 40960 tokens"):
        Reranker(str(tiny_model_dir), backend=backend, max_length=50000)


def test_inputs_longer_than_the_context_are_cut_to_max_length(vllm_reranker, reference_reranker, encode_spy) -> None:
    """What reaches vLLM never exceeds max_length (= the engine's max_model_len), however long the input."""
    huge = "purr " * 60_000  # ~60k tokens, past the model's whole 40960-token context
    docs = [huge, "short", "word " * 8_000 + "end", huge + "different tail"]
    scores = vllm_reranker.score("cats " * 1000, docs)
    limit = vllm_reranker.backend.engine.model_config.max_model_len
    assert limit == vllm_reranker.max_length == 8192
    (batch,) = encode_spy.calls
    # docs 0 and 3 differ only past the cut, so they became one prompt, scored once
    assert [len(ids) for ids in batch] == [8192, len(batch[1]), 8192] and len(batch[1]) < 8192
    assert scores[0] == scores[3]
    assert scores == pytest.approx(reference_reranker.score("cats " * 1000, docs), abs=1e-5)


# -- out of memory -----------------------------------------------------------------------------------


def test_out_of_memory_splits_the_batch_and_retries(vllm_reranker, expected, encode_spy) -> None:
    import torch

    spy = encode_spy
    # a group of more than 6 prompts runs out of memory (its 7th request fails)
    spy.fail = lambda index: (
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB") if index >= 6 else None
    )
    assert vllm_reranker.score(QUERY, DOCS) == expected
    calls = spy.calls
    assert [len(b) for b in calls] == [40, 20, 10, 5, 5, 10, 5, 5, 20, 10, 5, 5, 10, 5, 5]
    # every prompt was scored exactly once, in order, by the batches that fit
    assert [ids for b in calls if len(b) <= 6 for ids in b] == calls[0]
    assert_engine_idle(vllm_reranker)
    # the next call starts at the size that fit instead of running out of memory again
    spy.clear()
    assert vllm_reranker.score(QUERY, DOCS) == expected
    assert [len(b) for b in spy.calls] == [5] * 8


def test_out_of_memory_reported_as_runtime_error_is_split_too(vllm_reranker, expected, encode_spy) -> None:
    encode_spy.fail = lambda index: RuntimeError("CUDA error: out of memory") if index >= 20 else None
    assert vllm_reranker.score(QUERY, DOCS) == expected
    assert [len(b) for b in encode_spy.calls] == [40, 20, 20]


def test_out_of_memory_on_a_single_prompt_is_one_clear_error(vllm_reranker, expected, encode_spy) -> None:
    import torch

    encode_spy.fail = lambda index: torch.OutOfMemoryError("CUDA out of memory")
    with pytest.raises(EngineError, match=r"Out of memory scoring a single prompt of \d+ tokens\. Lower max_length"):
        vllm_reranker.score(QUERY, DOCS[:3])
    assert [len(b) for b in encode_spy.calls] == [3, 2, 1]  # split down to one prompt, then gave up
    assert_engine_idle(vllm_reranker)
    encode_spy.fail = lambda index: None
    assert vllm_reranker.score(QUERY, DOCS) == expected  # still usable


# -- engine errors -----------------------------------------------------------------------------------


def _engine_dead_error() -> Exception:
    from vllm.v1.engine.exceptions import EngineDeadError

    return EngineDeadError()


@pytest.mark.parametrize(
    ("make_error", "match"),
    [
        (
            lambda: RuntimeError("CUDA error: an illegal memory access was encountered"),
            r"vLLM failed to score 40 prompts: RuntimeError: CUDA error: an illegal memory access",
        ),
        (lambda: ValueError("something vLLM disliked"), r"vLLM failed to score 40 prompts: ValueError"),
        (_engine_dead_error, r"The vLLM engine process died while scoring 40 prompts .*restarts on the next call"),
    ],
    ids=["runtime-error", "value-error", "engine-dead"],
)
def test_an_engine_failure_is_one_engine_error_and_the_reranker_stays_usable(
    vllm_reranker, expected, encode_spy, make_error, match
) -> None:
    encode_spy.fail = lambda index: make_error()
    with pytest.raises(EngineError, match=match) as info:
        vllm_reranker.score(QUERY, DOCS)
    assert info.value.__cause__ is not None  # vLLM's own exception stays attached for the log
    assert len(encode_spy.calls) == 1  # not retried: only out of memory is
    assert_engine_idle(vllm_reranker)
    encode_spy.fail = lambda index: None
    assert vllm_reranker.score(QUERY, DOCS) == expected
    assert vllm_reranker.rank(QUERY, DOCS, top_n=2)[0].score == max(expected)


def test_an_interrupted_call_leaves_nothing_for_the_next_caller(vllm_reranker) -> None:
    """Ctrl-C in a sync caller: its requests are aborted before the KeyboardInterrupt reaches it.

    Regression (old synchronous backend): Ctrl-C inside ``LLM.classify`` left ~500 requests in the engine,
    and the next call failed with "vLLM returned 520 results for 10 prompts"."""
    assert threading.current_thread() is threading.main_thread()  # SIGINT is delivered to this thread
    engine = vllm_reranker.backend.engine
    big = [f"{i} " + "purring cat " * 150 for i in range(400)]  # several engine steps' worth
    small = vllm_reranker.score(QUERY, DOCS[:10])
    seen_busy: list[int] = []

    def interrupt_when_busy() -> None:
        deadline = time.monotonic() + 120
        while engine.get_num_unfinished_requests() == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        seen_busy.append(engine.get_num_unfinished_requests())
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_when_busy)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        vllm_reranker.score(QUERY, big)
    interrupter.join()
    assert seen_busy and seen_busy[0] > 0  # interrupted while the engine held its requests
    assert_engine_idle(vllm_reranker)
    assert vllm_reranker.score(QUERY, DOCS[:10]) == small


# -- an engine that dies (a separate engine, not the session's) --------------------------------------


def _engine_cores() -> set[int]:
    """PIDs of this process's vLLM engine-core children (``VLLM::EngineCore``), found through psutil."""
    import psutil

    cores = set()
    for child in psutil.Process().children():
        try:
            if "EngineCor" in child.name() or "EngineCore" in " ".join(child.cmdline()):
                cores.add(child.pid)
        except psutil.Error:
            continue
    return cores


def _engine_core_process(reranker: Reranker):
    import psutil

    (pid,) = _engine_cores() - reranker.other_cores  # type: ignore[attr-defined]
    return psutil.Process(pid)


def _wait_gone(processes, timeout: float = 30) -> list:
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return alive


@pytest.fixture(scope="module")
def own_engine(tiny_model_dir):
    """A second engine (different options, so not the shared session one), to be killed."""
    pytest.importorskip("psutil")
    others = _engine_cores()  # the session engine's (if started): not to be killed
    with Reranker(str(tiny_model_dir), engine_options={"dtype": "float32", "max_num_seqs": 48}) as reranker:
        reranker.other_cores = others  # type: ignore[attr-defined]
        yield reranker


def test_engine_killed_mid_call_gives_one_clear_error_then_restarts(own_engine, reference_reranker) -> None:
    docs = [f"{i} " + "purring cat " * 120 for i in range(600)]
    before = own_engine.score(QUERY, DOCS)
    old_engine = own_engine.backend.engine
    core = _engine_core_process(own_engine)
    family = [core, *core.children(recursive=True)]
    outcome: list[BaseException | list[float]] = []

    def call() -> None:
        try:
            outcome.append(own_engine.score(QUERY, docs))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 60
    while old_engine.get_num_unfinished_requests() == 0 and worker.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(core.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    worker.join(timeout=120)
    # Regression (old synchronous backend): vLLM's sync client left this caller blocked forever.
    assert not worker.is_alive()
    woken_after = time.monotonic() - killed_at
    (error,) = outcome
    assert isinstance(error, EngineError), error
    assert "engine process died while scoring" in str(error)
    assert "restarts on the next call" in str(error)
    assert _wait_gone(family) == []  # the engine's worker processes went with it: no orphans

    # the same object keeps working: the next call restarts the engine
    started = time.monotonic()
    after = own_engine.score(QUERY, DOCS)
    print(
        f"FIGURE engine death: caller woken {woken_after:.2f} s after the kill; "
        f"next call restarted the engine and scored in {time.monotonic() - started:.1f} s"
    )
    assert own_engine.backend.engine is not old_engine
    assert after == pytest.approx(before, abs=1e-6)
    assert after == pytest.approx(reference_reranker.score(QUERY, DOCS), abs=1e-5)


@pytest.mark.slow
def test_engine_killed_between_calls_restarts_without_an_error(own_engine) -> None:
    before = own_engine.score(QUERY, DOCS)
    core = _engine_core_process(own_engine)
    family = [core, *core.children(recursive=True)]
    core.kill()
    assert _wait_gone(family) == []
    assert own_engine.score(QUERY, DOCS) == pytest.approx(before, abs=1e-6)
