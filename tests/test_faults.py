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
DOCS = [f"Document {i}: cats purr {'and purr ' * (i % 7)}when they feel {('content', 'safe')[i % 2]}."
        for i in range(40)]


@pytest.fixture(scope="module")
def expected(vllm_reranker) -> list[float]:
    return vllm_reranker.score(QUERY, DOCS)


@pytest.fixture
def classify_spy(vllm_reranker, monkeypatch):
    """Wraps the session engine's ``classify``: records each batch, and raises what ``fail(batch)`` returns."""
    llm = vllm_reranker.backend.llm
    real = llm.classify
    calls: list[list[list[int]]] = []
    rules: dict[str, object] = {"fail": lambda batch: None}

    def classify(requests, **kwargs):
        batch = [list(r["prompt_token_ids"]) for r in requests]
        calls.append(batch)
        error = rules["fail"](batch)  # type: ignore[operator]
        if error is not None:
            raise error
        return real(requests, **kwargs)

    monkeypatch.setattr(llm, "classify", classify)
    # The out-of-memory cap is per backend; leave the session backend as it was.
    monkeypatch.setattr(vllm_reranker.backend, "_oom_cap", None)
    calls_and_rules = (calls, rules)
    yield calls_and_rules


def assert_engine_idle(vllm_reranker) -> None:
    engine = vllm_reranker.backend.llm.llm_engine
    assert engine.get_num_unfinished_requests() == 0
    assert not engine.has_unfinished_requests()


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


def test_inputs_longer_than_the_context_are_cut_to_max_length(vllm_reranker, reference_reranker, classify_spy) -> None:
    """What reaches vLLM never exceeds max_length (= the engine's max_model_len), however long the input."""
    calls, _ = classify_spy
    huge = "purr " * 60_000  # ~60k tokens, past the model's whole 40960-token context
    docs = [huge, "short", "word " * 8_000 + "end", huge + "different tail"]
    scores = vllm_reranker.score("cats " * 1000, docs)
    limit = vllm_reranker.backend.llm.llm_engine.model_config.max_model_len
    assert limit == vllm_reranker.max_length == 8192
    (batch,) = calls
    # docs 0 and 3 differ only past the cut, so they became one prompt, scored once
    assert [len(ids) for ids in batch] == [8192, len(batch[1]), 8192] and len(batch[1]) < 8192
    assert scores[0] == scores[3]
    assert scores == pytest.approx(reference_reranker.score("cats " * 1000, docs), abs=1e-5)


# -- out of memory -----------------------------------------------------------------------------------


def test_out_of_memory_splits_the_batch_and_retries(vllm_reranker, expected, classify_spy) -> None:
    import torch

    calls, rules = classify_spy
    rules["fail"] = lambda batch: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB") \
        if len(batch) > 6 else None
    assert vllm_reranker.score(QUERY, DOCS) == expected
    assert [len(b) for b in calls] == [40, 20, 10, 5, 5, 10, 5, 5, 20, 10, 5, 5, 10, 5, 5]
    # every prompt was scored exactly once, in order, by the batches that fit
    assert [ids for b in calls if len(b) <= 6 for ids in b] == calls[0]
    assert_engine_idle(vllm_reranker)
    # the next call starts at the size that fit instead of running out of memory again
    calls.clear()
    assert vllm_reranker.score(QUERY, DOCS) == expected
    assert [len(b) for b in calls] == [5] * 8


def test_out_of_memory_reported_as_runtime_error_is_split_too(vllm_reranker, expected, classify_spy) -> None:
    calls, rules = classify_spy
    rules["fail"] = lambda batch: RuntimeError("CUDA error: out of memory") if len(batch) > 20 else None
    assert vllm_reranker.score(QUERY, DOCS) == expected
    assert [len(b) for b in calls] == [40, 20, 20]


def test_out_of_memory_on_a_single_prompt_is_one_clear_error(vllm_reranker, expected, classify_spy) -> None:
    import torch

    calls, rules = classify_spy
    rules["fail"] = lambda batch: torch.OutOfMemoryError("CUDA out of memory")
    with pytest.raises(EngineError, match=r"Out of memory scoring a single prompt of \d+ tokens\. Lower max_length"):
        vllm_reranker.score(QUERY, DOCS[:3])
    assert [len(b) for b in calls] == [3, 2, 1]  # split down to one prompt, then gave up
    rules["fail"] = lambda batch: None
    assert vllm_reranker.score(QUERY, DOCS) == expected  # still usable


# -- engine errors -----------------------------------------------------------------------------------


def _engine_dead_error() -> Exception:
    from vllm.v1.engine.exceptions import EngineDeadError

    return EngineDeadError()


@pytest.mark.parametrize(
    ("make_error", "match"),
    [
        (lambda: RuntimeError("CUDA error: an illegal memory access was encountered"),
         r"vLLM failed to score 40 prompts: RuntimeError: CUDA error: an illegal memory access"),
        (lambda: ValueError("something vLLM disliked"), r"vLLM failed to score 40 prompts: ValueError"),
        (_engine_dead_error, r"The vLLM engine process died while scoring 40 prompts .*restarts on the next call"),
    ],
    ids=["runtime-error", "value-error", "engine-dead"],
)
def test_an_engine_failure_is_one_engine_error_and_the_reranker_stays_usable(
    vllm_reranker, expected, classify_spy, make_error, match
) -> None:
    calls, rules = classify_spy
    rules["fail"] = lambda batch: make_error()
    with pytest.raises(EngineError, match=match) as info:
        vllm_reranker.score(QUERY, DOCS)
    assert info.value.__cause__ is not None  # vLLM's own exception stays attached for the log
    assert len(calls) == 1  # not retried: only out of memory is
    rules["fail"] = lambda batch: None
    assert vllm_reranker.score(QUERY, DOCS) == expected
    assert vllm_reranker.rank(QUERY, DOCS, top_n=2)[0].score == max(expected)


def test_an_interrupted_call_leaves_nothing_for_the_next_caller(vllm_reranker, monkeypatch) -> None:
    """Regression: Ctrl-C inside ``LLM.classify`` left ~500 requests in the engine, and the next call
    failed with "vLLM returned 520 results for 10 prompts" (vLLM hands every finished request back)."""
    engine = vllm_reranker.backend.llm.llm_engine
    real_step = engine.step
    steps = 0

    def step():
        nonlocal steps
        steps += 1
        if steps == 2:
            raise KeyboardInterrupt
        return real_step()

    big = [f"{i} " + "purring cat " * 150 for i in range(200)]  # several engine steps' worth
    small = vllm_reranker.score(QUERY, DOCS[:10])
    monkeypatch.setattr(engine, "step", step)
    with pytest.raises(KeyboardInterrupt):
        vllm_reranker.score(QUERY, big)
    monkeypatch.undo()
    assert_engine_idle(vllm_reranker)
    assert vllm_reranker.score(QUERY, DOCS[:10]) == small


# -- an engine that dies (a separate engine, not the session's) --------------------------------------


def _engine_core_process(reranker: Reranker):
    import psutil

    manager = reranker.backend.llm.llm_engine.engine_core.resources.engine_manager
    (process,) = manager.processes
    return psutil.Process(process.pid)


def _wait_gone(processes, timeout: float = 30) -> list:
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return alive


@pytest.fixture(scope="module")
def own_engine(tiny_model_dir):
    """A second engine (different options, so not the shared session one), to be killed."""
    pytest.importorskip("psutil")
    with Reranker(str(tiny_model_dir), engine_options={"dtype": "float32", "max_num_seqs": 48}) as reranker:
        yield reranker


def test_engine_killed_mid_call_gives_one_clear_error_then_restarts(own_engine, reference_reranker) -> None:
    docs = [f"{i} " + "purring cat " * 120 for i in range(600)]
    before = own_engine.score(QUERY, DOCS)
    old_llm = own_engine.backend.llm
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
    while old_llm.llm_engine.get_num_unfinished_requests() == 0 and worker.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(core.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    worker.join(timeout=120)
    # Regression: vLLM's sync client left this caller blocked forever (and the engine lock held).
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
    print(f"FIGURE engine death: caller woken {woken_after:.2f} s after the kill; "
          f"next call restarted the engine and scored in {time.monotonic() - started:.1f} s")
    assert own_engine.backend.llm is not old_llm
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
