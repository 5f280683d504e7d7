"""The vLLM backend on vLLM's async engine: FIFO admission, calls sharing engine steps, a loop that is
never blocked, failed requests that never become scores, and scores that do not saturate at 1.0."""

from __future__ import annotations

import asyncio
import json
import math
import shutil

import pytest

from qwen3_rerank import DEFAULT_INSTRUCTION, EngineError, Reranker
from qwen3_rerank.backends.vllm_admission import AdmissionGate

# -- admission (no engine) ---------------------------------------------------------------------------


async def _admitted(gate: AdmissionGate, n: int, log: list[str], name: str) -> None:
    await gate.acquire(n)
    log.append(name)


async def test_admission_is_first_come_first_served_and_never_overtaken() -> None:
    gate = AdmissionGate(8)
    log: list[str] = []
    await gate.acquire(6)  # A holds 6 of 8
    b = asyncio.create_task(_admitted(gate, 4, log, "B"))
    await asyncio.sleep(0)
    c = asyncio.create_task(_admitted(gate, 1, log, "C"))  # would fit now, but B came first
    await asyncio.sleep(0)
    assert log == [] and gate.in_flight == 6
    gate.release(6)
    await asyncio.gather(b, c)
    assert log == ["B", "C"] and gate.in_flight == 5 and gate.peak == 6


async def test_a_cancelled_waiter_lets_the_ones_behind_it_in() -> None:
    gate = AdmissionGate(8)
    log: list[str] = []
    await gate.acquire(6)
    b = asyncio.create_task(_admitted(gate, 4, log, "B"))
    await asyncio.sleep(0)
    c = asyncio.create_task(_admitted(gate, 2, log, "C"))
    await asyncio.sleep(0)
    b.cancel()
    await asyncio.gather(b, return_exceptions=True)
    await c
    assert log == ["C"] and gate.in_flight == 8


def test_admission_limit_must_be_a_positive_int() -> None:
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ValueError, match="max_in_flight_prompts must be a positive int or None"):
            AdmissionGate(bad)  # type: ignore[arg-type]
    assert AdmissionGate(None).group_size(10_000) == 10_000
    assert AdmissionGate(64).group_size(100) == 64


# -- on the session engine ---------------------------------------------------------------------------


QUERY = "what makes cats purr"


def _prompts(prompt_builder, tag: str, n: int) -> list[list[int]]:
    docs = [f"{tag} document {i}: cats purr {'softly ' * (i % 5)}when content." for i in range(n)]
    return prompt_builder.build(DEFAULT_INSTRUCTION, f"{QUERY} {tag}", docs)


def _watch_unfinished_requests(engine, monkeypatch) -> list[int]:
    """The engine's own count of unfinished requests, read each time one of its outputs arrives."""
    real = engine.encode
    seen: list[int] = []

    async def encode(prompt, params, request_id, *args, **kwargs):
        async for output in real(prompt, params, request_id, *args, **kwargs):
            seen.append(engine.get_num_unfinished_requests())
            yield output

    monkeypatch.setattr(engine, "encode", encode)
    return seen


@pytest.mark.vllm
async def test_concurrent_calls_share_the_engine(vllm_reranker, prompt_builder, monkeypatch) -> None:
    """Fails if calls are serialised: the engine's own count of unfinished requests, read each time one
    of them finishes, must exceed what any single call submits."""
    backend = vllm_reranker.backend
    calls = [_prompts(prompt_builder, f"c{k}", 30) for k in range(8)]
    serial = [backend.score_prompts(p) for p in calls]
    unfinished_seen = _watch_unfinished_requests(backend.engine, monkeypatch)
    results = await asyncio.gather(*(backend.ascore_prompts(p) for p in calls))
    for got, want in zip(results, serial, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    assert max(unfinished_seen) > 30, max(unfinished_seen)
    print(f"FIGURE sharing: up to {max(unfinished_seen)} requests of 8 concurrent 30-prompt calls in the engine")


@pytest.mark.vllm
async def test_async_scoring_never_blocks_the_callers_loop(vllm_reranker, prompt_builder) -> None:
    """While a call is in the engine, the caller's loop keeps running: a coroutine on it sees the engine
    holding that call's requests. A backend that blocked the loop until done would let it see none."""
    backend = vllm_reranker.backend
    prompts = _prompts(prompt_builder, "block", 300)
    seen_in_flight = 0
    finished = False

    async def watch() -> None:
        nonlocal seen_in_flight
        while not finished:
            seen_in_flight = max(seen_in_flight, backend.in_flight_prompts)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    scores = await backend.ascore_prompts(prompts)
    finished = True
    await watcher
    assert len(scores) == 300
    assert seen_in_flight == 300


@pytest.mark.vllm
def test_an_out_of_vocabulary_token_is_one_clear_error(vllm_reranker, prompt_builder) -> None:
    backend = vllm_reranker.backend
    good = _prompts(prompt_builder, "vocab", 3)
    expected = backend.score_prompts(good)
    bad = [*good[:2], [*good[2][:-1], 10_000_000]]
    with pytest.raises(EngineError, match=r"vLLM refused prompt 2 of 3 .*out of vocabulary"):
        backend.score_prompts(bad)
    assert backend.engine.get_num_unfinished_requests() == 0 and backend.in_flight_prompts == 0
    assert backend.score_prompts(good) == pytest.approx(expected, abs=1e-6)


@pytest.mark.vllm
def test_an_output_carrying_an_error_is_never_a_score(vllm_reranker, prompt_builder, monkeypatch) -> None:
    """vLLM >= 0.32 reports a failed request as a finished output with ``error`` set (and no data)."""
    from vllm.outputs import PoolingRequestOutput

    try:
        from vllm.outputs import RequestError
    except ImportError:
        pytest.skip("this vLLM has no request-level error outputs")
    from qwen3_rerank.backends.vllm_failures import RequestFailedError

    backend = vllm_reranker.backend
    engine = backend.engine
    real = engine.encode

    def encode(prompt, params, request_id, *args, **kwargs):
        if not request_id.endswith("-1"):
            return real(prompt, params, request_id, *args, **kwargs)

        async def failed():
            yield PoolingRequestOutput(
                request_id,
                None,
                list(prompt["prompt_token_ids"]),
                0,
                True,
                error=RequestError(code="internal_error", message="the worker fell over"),
            )

        return failed()

    monkeypatch.setattr(engine, "encode", encode)
    with pytest.raises(RequestFailedError, match=r"vLLM failed request 1 of 3 .*internal_error: the worker fell over"):
        backend.score_prompts(_prompts(prompt_builder, "err", 3))
    monkeypatch.undo()
    assert backend.engine.get_num_unfinished_requests() == 0 and backend.in_flight_prompts == 0


@pytest.mark.vllm
async def test_max_in_flight_prompts_bounds_the_engine_and_keeps_the_scores(
    vllm_reranker, prompt_builder, monkeypatch
) -> None:
    backend = vllm_reranker.backend
    calls = [_prompts(prompt_builder, f"adm{k}", 25) for k in range(6)]
    serial = [backend.score_prompts(p) for p in calls]
    gate = AdmissionGate(16)
    monkeypatch.setattr(backend._shared, "gate", gate)
    unfinished_seen = _watch_unfinished_requests(backend.engine, monkeypatch)
    results = await asyncio.gather(*(backend.ascore_prompts(p) for p in calls))
    for got, want in zip(results, serial, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    assert gate.peak == 16 and gate.in_flight == 0
    assert max(unfinished_seen) <= 16


# -- scores near 1 (a separate checkpoint, so a separate engine) -------------------------------------


def _reference_diff(model_dir, prompt: list[int]) -> float:
    """z_yes - z_no at the last position in float64, from the full LM head (transformers)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float64)
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[0, -1]
    return float(logits[9693] - logits[2152])


@pytest.mark.vllm
def test_scores_near_one_do_not_saturate(tiny_model_dir, prompt_builder, tmp_path) -> None:
    """vLLM's float32 sigmoid is exactly 1.0 past a logit difference of ~16.7; ours is the float64 sigmoid
    of the difference, so sigmoid(25) = 1 - 1.4e-11 comes back below 1.0 and as the reference says."""
    import torch
    from safetensors.torch import load_file, save_file

    (prompt,) = prompt_builder.build(DEFAULT_INSTRUCTION, QUERY, ["cats purr when they feel content."])
    base = _reference_diff(tiny_model_dir, prompt)
    assert abs(base) > 0.05
    # Untie the LM head and stretch the yes-no direction so that this prompt's difference becomes 25.
    steep = tmp_path / "steep"
    shutil.copytree(tiny_model_dir, steep)
    weights = load_file(steep / "model.safetensors")
    head = weights["model.embed_tokens.weight"].clone()
    head[9693] = head[2152] + (25.0 / base) * (head[9693] - head[2152])
    weights["lm_head.weight"] = head
    save_file(weights, steep / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((steep / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (steep / "config.json").write_text(json.dumps(config))
    reference = _reference_diff(steep, prompt)
    assert reference == pytest.approx(25.0, rel=1e-6)
    assert torch.sigmoid(torch.tensor(reference, dtype=torch.float32)).item() == 1.0  # what float32 gives

    with Reranker(str(steep), engine_options={"dtype": "float32"}) as reranker:
        (score,) = reranker.backend.score_prompts([prompt])
    want = 1.0 / (1.0 + math.exp(-reference))
    assert score < 1.0
    assert score == pytest.approx(want, rel=1e-6)
    assert (1.0 - score) == pytest.approx(1.0 - want, rel=1e-3)  # the tail itself, not just the leading 1
