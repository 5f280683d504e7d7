"""Many callers on one engine (and one server client): serial scores, clean cancellation, no deadlock.

Scores are compared with ``abs=1e-6``, not bitwise: vLLM's float32 result for one prompt can move by
~1e-7 to 1e-6 with prefix-cache hits and batch composition (measured in docs/reliability.md). Nearly all documents of a
set score more than 2e-6 apart, so a score handed to the wrong document or caller still fails.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qwen3_rerank import DEFAULT_INSTRUCTION, Reranker

pytestmark = pytest.mark.vllm

TOL = 1e-6
THREADS = 16
CALLS_PER_THREAD = 6
TASKS = 64


def make_sets(seed: int, n: int) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    words = [
        "cat",
        "purr",
        "dog",
        "bark",
        "tea",
        "green",
        "Paris",
        "capital",
        "gravity",
        "moon",
        "sun",
        "BM25",
        "rank",
        "query",
        "日本",
        "café",
        "😀",
    ]
    sets = []
    for k in range(n):
        query = " ".join(rng.choices(words, k=rng.randint(1, 6))) + f" #{k}"
        docs = [" ".join(rng.choices(words, k=rng.randint(0, 40))) + f" {k}.{i}" for i in range(rng.randint(1, 12))]
        sets.append((query, docs))
    return sets


SETS = make_sets(11, 24)


def close(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(abs(a - b) <= TOL for a, b in zip(got, want, strict=True))


@pytest.fixture(scope="module")
def serial(vllm_reranker) -> list[list[float]]:
    results = [vllm_reranker.score(q, d) for q, d in SETS]
    # A swapped score must be visible: nearly all pairs of documents in a set score more than 2 * TOL apart.
    pairs = [(a, b) for scores in results for i, a in enumerate(scores) for b in scores[:i]]
    assert sum(abs(a - b) > 2 * TOL for a, b in pairs) >= 0.95 * len(pairs)
    return results


def one_call(reranker: Reranker, k: int, how: int) -> list[float]:
    """Score set k through one of the API's entry points; return scores in input order."""
    query, docs = SETS[k]
    if how == 0:
        return reranker.score(query, docs)
    if how == 1:
        return reranker.score_pairs([(query, d) for d in docs])
    ranked = reranker.rank(query, docs)
    assert sorted(r.index for r in ranked) == list(range(len(docs)))
    out = [0.0] * len(docs)
    for r in ranked:
        assert r.document == docs[r.index]
        out[r.index] = r.score
    return out


async def one_acall(reranker: Reranker, k: int, how: int) -> list[float]:
    query, docs = SETS[k]
    if how == 0:
        return await reranker.ascore(query, docs)
    if how == 1:
        return await reranker.ascore_pairs([(query, d) for d in docs])
    ranked = await reranker.arank(query, docs)
    out = [0.0] * len(docs)
    for r in ranked:
        assert r.document == docs[r.index]
        out[r.index] = r.score
    return out


class InFlight:
    """Counts callers inside a call at the same moment; ``peak`` is the most there ever were."""

    def __init__(self) -> None:
        self.now = self.peak = self.done = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1
            self.done += 1


def test_many_threads_get_the_serial_scores(vllm_reranker, serial) -> None:
    barrier = threading.Barrier(THREADS)
    mismatches: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    in_flight = InFlight()

    def client(t: int) -> None:
        try:
            barrier.wait()
            for c in range(CALLS_PER_THREAD):
                k = (t * 7 + c * 5) % len(SETS)
                with in_flight:
                    got = one_call(vllm_reranker, k, (t + c) % 3)
                if not close(got, serial[k]):
                    mismatches.append((t, k))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "deadlock"
    assert not errors and not mismatches
    assert in_flight.done == THREADS * CALLS_PER_THREAD
    assert in_flight.peak >= THREADS // 2  # they really were waiting on the engine together
    print(f"FIGURE threads: {THREADS} threads x {CALLS_PER_THREAD} calls, peak {in_flight.peak} callers in flight")


async def test_many_asyncio_tasks_get_the_serial_scores(vllm_reranker, serial) -> None:
    ks = [(i * 5) % len(SETS) for i in range(TASKS)]
    in_flight = InFlight()

    async def counted(k: int, how: int) -> list[float]:
        with in_flight:
            return await one_acall(vllm_reranker, k, how)

    results = await asyncio.gather(*(counted(k, i % 3) for i, k in enumerate(ks)))
    assert all(close(got, serial[k]) for got, k in zip(results, ks, strict=True))
    assert in_flight.peak == TASKS  # every task was in flight before the first finished
    print(f"FIGURE tasks: {TASKS} asyncio tasks, peak {in_flight.peak} in flight")


async def test_threads_and_tasks_at_once(vllm_reranker, serial) -> None:
    """Sync callers in threads and async callers on the loop, all on one engine at the same time."""
    ks = list(range(len(SETS)))

    def sync_side() -> list[bool]:
        return [close(one_call(vllm_reranker, k, k % 3), serial[k]) for k in ks]

    thread_results = [asyncio.to_thread(sync_side) for _ in range(4)]
    task_results = [one_acall(vllm_reranker, k, (k + 1) % 3) for k in ks]
    outcome = await asyncio.gather(*thread_results, *task_results)
    assert all(all(ok) for ok in outcome[:4])
    assert all(close(got, serial[k]) for got, k in zip(outcome[4:], ks, strict=True))


# -- cancellation ------------------------------------------------------------------------------------

BIG = [f"{i} " + "purring cat on a warm mat " * 40 for i in range(1500)]  # ~seconds of engine work


def engine_of(reranker: Reranker):
    """vLLM's ``AsyncLLM``: its public ``get_num_unfinished_requests`` is the engine's own count."""
    return reranker.backend.engine


def assert_idle(reranker: Reranker) -> None:
    assert engine_of(reranker).get_num_unfinished_requests() == 0
    assert reranker.backend.in_flight_prompts == 0


async def wait_until_engine_busy(reranker: Reranker, task: asyncio.Task, timeout: float = 60) -> None:
    engine = engine_of(reranker)
    deadline = time.monotonic() + timeout
    while engine.get_num_unfinished_requests() == 0:
        assert not task.done(), "the call finished before it could be cancelled; make BIG bigger"
        assert time.monotonic() < deadline
        await asyncio.sleep(0.002)


@pytest.fixture(scope="module")
def big_call_seconds(vllm_reranker) -> float:
    vllm_reranker.score("warm up", BIG[:8])
    started = time.monotonic()
    vllm_reranker.score("how long does a whole batch take", BIG)
    return time.monotonic() - started


async def test_a_cancelled_call_leaves_nothing_running(vllm_reranker, serial, big_call_seconds) -> None:
    task = asyncio.create_task(vllm_reranker.ascore("a query nobody waits for", BIG))
    await wait_until_engine_busy(vllm_reranker, task)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stopped_after = time.monotonic() - cancelled_at
    # As soon as the cancelled call has returned, none of its requests is left in the engine ...
    assert_idle(vllm_reranker)
    # ... and it stopped within an engine step or so, not after the whole batch.
    assert stopped_after < big_call_seconds / 3, (stopped_after, big_call_seconds)
    print(f"FIGURE cancel: stopped {stopped_after:.3f} s after cancel; the whole batch takes {big_call_seconds:.2f} s")
    assert close(await vllm_reranker.ascore(*SETS[0]), serial[0])


async def test_a_call_cancelled_while_waiting_for_admission_never_reaches_the_engine(
    vllm_reranker, serial, monkeypatch
) -> None:
    """With ``max_in_flight_prompts`` full, a call waits its turn; cancelled there, none of its prompts is sent."""
    from qwen3_rerank.backends.vllm_admission import AdmissionGate

    backend = vllm_reranker.backend
    gate = AdmissionGate(len(BIG))  # the long call fills it alone
    monkeypatch.setattr(backend._shared, "gate", gate)
    engine = engine_of(vllm_reranker)
    real = engine.encode
    sent: list[str] = []

    def encode(prompt, params, request_id, *args, **kwargs):
        sent.append(request_id)
        return real(prompt, params, request_id, *args, **kwargs)

    monkeypatch.setattr(engine, "encode", encode)
    busy = asyncio.create_task(asyncio.to_thread(vllm_reranker.score, "a long sync call", BIG))
    await wait_until_engine_busy(vllm_reranker, busy)
    waiting = asyncio.create_task(vllm_reranker.ascore(*SETS[1]))
    deadline = time.monotonic() + 30
    while gate.waiting == 0:  # now queued behind the long call
        assert time.monotonic() < deadline and not waiting.done()
        await asyncio.sleep(0.002)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not busy.done()  # it returned without waiting for the engine to be free
    assert gate.waiting == 0
    assert len(sent) == len(BIG)  # the cancelled call's prompts never reached vLLM
    assert close(await busy, await vllm_reranker.ascore("a long sync call", BIG))
    assert gate.peak == len(BIG)


async def test_a_timed_out_call_leaves_nothing_running(vllm_reranker, serial, big_call_seconds) -> None:
    engine = engine_of(vllm_reranker)
    reached_engine = False

    async def watch() -> None:
        nonlocal reached_engine
        while not reached_engine:
            reached_engine = engine.get_num_unfinished_requests() > 0
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    with pytest.raises(TimeoutError):
        # a deadline that falls while the engine works on the call
        await asyncio.wait_for(vllm_reranker.arank("a query with a deadline", BIG, top_n=3), big_call_seconds / 3)
    watcher.cancel()
    assert reached_engine
    assert_idle(vllm_reranker)
    assert close(await vllm_reranker.ascore(*SETS[2]), serial[2])


async def test_many_cancelled_tasks_among_live_ones(vllm_reranker, serial) -> None:
    tasks = [asyncio.create_task(one_acall(vllm_reranker, k % len(SETS), k % 3)) for k in range(40)]
    await asyncio.sleep(0)
    for task in tasks[::2]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for k, result in enumerate(results):
        if isinstance(result, asyncio.CancelledError):
            continue  # a task cancelled before it finished
        assert close(result, serial[k % len(SETS)]), k
    assert sum(not isinstance(r, BaseException) for r in results) >= 20
    assert_idle(vllm_reranker)


# -- event loops come and go -------------------------------------------------------------------------


def run_in_thread(fn, timeout: float = 300):
    """Run fn in a thread; a hang fails the test instead of hanging the suite."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "deadlock"
    return result[0]


def test_asyncio_run_twice_and_a_closed_loop(vllm_reranker, serial) -> None:
    def scenario() -> list[list[float]]:
        first = asyncio.run(vllm_reranker.ascore(*SETS[3]))

        async def cancel_one() -> None:
            task = asyncio.create_task(vllm_reranker.ascore("dropped with its loop", BIG))
            await asyncio.sleep(0.05)
            assert not task.done()  # asyncio.run cancels it when this coroutine returns

        asyncio.run(cancel_one())
        loop = asyncio.new_event_loop()
        second = loop.run_until_complete(vllm_reranker.ascore(*SETS[4]))
        loop.close()
        third = asyncio.run(vllm_reranker.ascore(*SETS[3]))
        return [first, second, third, vllm_reranker.score(*SETS[4])]

    first, second, third, sync = run_in_thread(scenario)
    assert close(first, serial[3]) and close(third, serial[3])
    assert close(second, serial[4]) and close(sync, serial[4])
    assert_idle(vllm_reranker)


# -- the server client, against a fake vLLM server (no engine: the client's own concurrency) ---------


def fake_score(ids: list[int]) -> float:
    """A deterministic score per prompt that any mix-up between prompts or callers would change."""
    return zlib.crc32(json.dumps(ids).encode()) / 2**32


class FakeVLLMServer:
    """Just enough of ``vllm serve`` for the client: /v1/models and /classify, with an optional delay."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.active = 0
        self.peak = 0
        self.requests = 0
        self.finished = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._reply({"data": [{"id": "fake", "max_model_len": 8192}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests += 1
                    server.active += 1
                    server.peak = max(server.peak, server.active)
                try:
                    time.sleep(server.delay)
                    data = [{"index": i, "probs": [fake_score(ids)]} for i, ids in enumerate(body["input"])]
                    self._reply({"data": data[::-1]})  # out of order: the client must map by index
                finally:
                    with server._lock:
                        server.active -= 1
                        server.finished += 1

            def _reply(self, payload: object) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fake_server() -> Iterator[FakeVLLMServer]:
    pytest.importorskip("httpx")
    server = FakeVLLMServer()
    yield server
    server.close()


@pytest.fixture
def server_reranker(fake_server, tokenizer_dir) -> Iterator[Reranker]:
    from qwen3_rerank.backends.server_backend import ServerBackend

    backend = ServerBackend(fake_server.url, batch_size=4, max_concurrency=8, retries=0)
    with Reranker(str(tokenizer_dir), backend=backend) as reranker:
        yield reranker
    backend.close()


def expected_fake(prompt_builder, query: str, docs: list[str]) -> list[float]:
    return [fake_score(ids) for ids in prompt_builder.build(DEFAULT_INSTRUCTION, query, docs)]


def test_server_client_many_threads(server_reranker, prompt_builder) -> None:
    want = [expected_fake(prompt_builder, q, d) for q, d in SETS]
    barrier = threading.Barrier(THREADS)
    bad: list[object] = []

    def client(t: int) -> None:
        try:
            barrier.wait()
            for c in range(CALLS_PER_THREAD):
                k = (t * 7 + c * 5) % len(SETS)
                if one_call(server_reranker, k, (t + c) % 3) != want[k]:
                    bad.append((t, k))
        except BaseException as exc:
            bad.append(exc)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "deadlock"
    assert not bad


async def test_server_client_many_tasks(server_reranker, prompt_builder) -> None:
    ks = [(i * 5) % len(SETS) for i in range(TASKS)]
    results = await asyncio.gather(*(one_acall(server_reranker, k, i % 3) for i, k in enumerate(ks)))
    assert all(got == expected_fake(prompt_builder, *SETS[k]) for got, k in zip(results, ks, strict=True))


async def test_server_client_cancellation_leaves_no_request_behind(fake_server, server_reranker) -> None:
    fake_server.delay = 0.5
    docs = [f"doc {i}" for i in range(64)]  # 16 requests of 4, 8 at a time
    task = asyncio.create_task(server_reranker.ascore("q", docs))
    deadline = time.monotonic() + 10
    while fake_server.requests == 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    loop = server_reranker.backend._loop.loop
    # the client's private loop has dropped every request of the cancelled call ...
    deadline = time.monotonic() + 5
    while len(asyncio.all_tasks(loop)) > 0:
        assert time.monotonic() < deadline, asyncio.all_tasks(loop)
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)  # ... so no new request was sent after the cancel
    assert fake_server.requests <= 8
    fake_server.delay = 0.0
    assert len(await server_reranker.ascore("q", docs[:5])) == 5


def test_server_client_asyncio_run_twice(server_reranker, prompt_builder) -> None:
    def scenario() -> list[list[float]]:
        a = asyncio.run(server_reranker.ascore(*SETS[5]))
        b = asyncio.run(server_reranker.ascore(*SETS[6]))
        return [a, b, server_reranker.score(*SETS[5])]

    a, b, c = run_in_thread(scenario, timeout=60)
    assert a == c == expected_fake(prompt_builder, *SETS[5])
    assert b == expected_fake(prompt_builder, *SETS[6])
