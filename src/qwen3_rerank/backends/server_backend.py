"""Score through running vLLM servers (``vllm serve MODEL --runner pooling --hf-overrides ...``).

The default endpoint, ``/classify``, receives the token ids made by :class:`qwen3_rerank.PromptBuilder`,
so a server scores byte-identical prompts to the in-process backend. ``/rerank`` and ``/score`` take
text instead: the server renders its ``--chat-template`` and tokenizes the result itself, so control-token
spellings inside documents become control tokens there, and a document cut at ``max_length`` is
re-tokenized (see docs/deployment.md).

All HTTP work runs on one private event loop in a daemon thread, which owns the single pooled
``httpx.AsyncClient``. The sync and async paths both submit to it, so in-flight requests are bounded
per backend (not per caller), and the sync path works from inside a running event loop too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import math
import threading
import time
import warnings
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import BackendNotInstalledError, EngineError, ServerError
from ..prompt import DEFAULT_INSTRUCTION, PREFIX, SUFFIX
from .vllm_backend import HF_OVERRIDES

if TYPE_CHECKING:
    import httpx

__all__ = ["Endpoint", "ServerBackend", "chat_template", "serve_command"]

logger = logging.getLogger(__name__)

Endpoint = Literal["classify", "rerank", "score"]
_ENDPOINTS = ("classify", "rerank", "score")
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: after a transport error a server is tried last for this long, so one dead server in a fleet
#: does not cost every batch a failed attempt.
_DOWN_SECONDS = 5.0
# Spellings the server's tokenizer turns into control tokens when they appear in text.
_CONTROL_SPELLINGS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>")


def chat_template() -> str:
    """The Qwen3-Reranker prompt as a chat template, for ``vllm serve --chat-template`` (``/rerank``, ``/score``).

    Built from the same template strings as :class:`~qwen3_rerank.PromptBuilder`. Unlike vLLM's example
    template, an empty instruction stays empty. The trailing ``{{ '' }}`` keeps Jinja from dropping the
    template's final newline, which is part of the prompt.
    """
    query = "(messages | selectattr('role', 'eq', 'query') | first).content"
    document = "(messages | selectattr('role', 'eq', 'document') | first).content"
    instruction = f"instruction if instruction is defined else {json.dumps(DEFAULT_INSTRUCTION)}"
    return (
        f"{PREFIX}<Instruct>: {{{{ {instruction} }}}}\n<Query>: {{{{ {query} }}}}\n"
        f"<Document>: {{{{ {document} }}}}{SUFFIX}{{{{ '' }}}}"
    )


def serve_command(
    model: str, *, port: int = 8000, host: str = "0.0.0.0", chat_template_path: str | None = None
) -> list[str]:
    """The ``vllm serve`` argv this backend expects (``--chat-template`` only for /rerank and /score)."""
    argv = ["vllm", "serve", model, "--runner", "pooling", "--hf-overrides", json.dumps(HF_OVERRIDES),
            "--host", host, "--port", str(port)]
    if chat_template_path is not None:
        argv += ["--chat-template", chat_template_path]
    return argv


def _normalise_urls(base_urls: str | Sequence[str]) -> tuple[str, ...]:
    urls = [base_urls] if isinstance(base_urls, str) else list(base_urls) if isinstance(base_urls, Sequence) else None
    if not urls or not all(isinstance(u, str) for u in urls):
        raise TypeError(
            f"base_urls must be a URL or a non-empty list of URLs such as 'http://10.0.0.5:8000', got {base_urls!r}"
        )
    cleaned: list[str] = []
    for url in urls:
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base URL {url!r} must start with http:// or https://, e.g. 'http://127.0.0.1:8000'")
        # People paste the OpenAI base URL; vLLM's /classify, /rerank and /score live at the root.
        url = url.removesuffix("/v1")
        if url in cleaned:
            raise ValueError(f"base URL {url!r} is listed twice; list each server once")
        cleaned.append(url)
    return tuple(cleaned)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _positive_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class _Retryable(Exception):
    """A failure worth another try (connect error, timeout, 5xx, 429, malformed answer)."""

    def __init__(self, url: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"{url}: {reason}")
        self.url, self.reason, self.retry_after = url, reason, retry_after


@dataclass(frozen=True, slots=True)
class _Job:
    """One HTTP request: the prompts' positions in the caller's list and the body that scores them."""

    positions: tuple[int, ...]
    path: str
    body: dict[str, Any]


@dataclass
class _ServerState:
    in_flight: int = 0
    down_until: float = 0.0


class _LoopThread:
    """A private event loop in a daemon thread; coroutines are submitted to it from any thread or loop.

    It holds no reference to its backend, so a backend that is garbage-collected unclosed can still
    stop it (through ``weakref.finalize``).
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.client: httpx.AsyncClient | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, name="qwen3-rerank-http", daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def shutdown(self) -> None:
        """Cancel what is in flight (its callers get an error, not a hang), close the pool, stop the loop."""
        if self.loop.is_closed():
            return
        if threading.current_thread() is not self.thread:
            with contextlib.suppress(Exception):
                self.submit(self._cancel_all()).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=10)
            if not self.thread.is_alive():
                self.loop.close()

    async def _cancel_all(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()


class ServerBackend:
    """Scores prompts on one or several running vLLM servers.

    Args:
        base_urls: one URL (``"http://10.0.0.5:8000"``) or several; requests go to the least busy one.
        api_key: sent as ``Authorization: Bearer ...`` (``vllm serve --api-key``).
        endpoint: ``"classify"`` (token ids, exact; default), or ``"rerank"`` / ``"score"`` for servers that
            only expose those; these need the server started with ``--chat-template`` (:func:`chat_template`)
            and a tokenizer here to turn prompts back into text.
        served_model_name: the ``model`` field of each request, when a server serves several names.
        batch_size: prompts per HTTP request.
        max_concurrency: requests in flight at once over all servers (default 4 per server).
        timeout: seconds to wait for one response; ``connect_timeout`` for the connection.
        retries: extra attempts after a connect error, timeout, 5xx, 429 or malformed answer, with
            exponential backoff from ``backoff`` up to ``max_backoff`` seconds; other servers first.
        tokenizer: a tokenizer directory or Hub name (or a loaded tokenizer) for ``rerank``/``score``.
        check: ask every server for ``/v1/models`` now, so a wrong URL fails here and
            ``max_prompt_tokens`` is the smallest ``max_model_len`` among them.
    """

    name = "server"

    def __init__(
        self,
        base_urls: str | Sequence[str],
        *,
        api_key: str | None = None,
        endpoint: Endpoint = "classify",
        served_model_name: str | None = None,
        batch_size: int = 64,
        max_concurrency: int | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        retries: int = 4,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        tokenizer: Any = None,
        check: bool = True,
    ) -> None:
        try:
            import httpx  # noqa: F401
            import tenacity  # noqa: F401
        except ImportError as exc:
            raise BackendNotInstalledError(
                "The server backend needs httpx and tenacity: pip install qwen3-rerank[server]"
            ) from exc
        self.base_urls = _normalise_urls(base_urls)
        if endpoint not in _ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(_ENDPOINTS)}, got {endpoint!r}")
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise TypeError("api_key must be a non-empty str or None")
        if served_model_name is not None and not isinstance(served_model_name, str):
            raise TypeError(f"served_model_name must be a str or None, got {served_model_name!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        self.endpoint: Endpoint = endpoint
        self.served_model_name = served_model_name
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.max_concurrency = _positive_int(
            4 * len(self.base_urls) if max_concurrency is None else max_concurrency, "max_concurrency"
        )
        self.timeout = _positive_float(timeout, "timeout")
        self.connect_timeout = _positive_float(connect_timeout, "connect_timeout")
        self.retries = retries
        self.backoff = _positive_float(backoff, "backoff")
        self.max_backoff = _positive_float(max_backoff, "max_backoff")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._tokenizer = self._load_tokenizer(tokenizer) if endpoint != "classify" else None
        self._servers = {url: _ServerState() for url in self.base_urls}
        self._turn = 0
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: _LoopThread | None = _LoopThread()
        self._finalizer = weakref.finalize(self, self._loop.shutdown)
        try:
            self._run(self._start())
            self.max_prompt_tokens: int | None = self._run(self._probe()) if check else None
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_options(cls, model: str, options: Mapping[str, Any] | None) -> ServerBackend:
        """Build from ``Reranker(..., backend="server", engine_options={...})``; the model names the tokenizer."""
        options = dict(options or {})
        if "base_urls" not in options:
            raise ValueError(
                "backend='server' needs engine_options={'base_urls': ['http://HOST:PORT', ...]}, the URLs of "
                "running `vllm serve` servers"
            )
        options.setdefault("tokenizer", model)
        try:
            return cls(**options)
        except TypeError as exc:
            if "unexpected keyword" in str(exc):
                raise TypeError(f"engine_options for backend='server': {exc}") from None
            raise

    # -- plumbing -----------------------------------------------------------------------------------

    @staticmethod
    def _load_tokenizer(tokenizer: Any) -> Any:
        if tokenizer is None:
            raise ValueError(
                "endpoint 'rerank'/'score' sends text, so it needs tokenizer= (the model's directory or Hub "
                "name) to turn prompts back into text; endpoint='classify' needs none"
            )
        if isinstance(tokenizer, str):
            from ..prompt import load_hf_tokenizer

            return load_hf_tokenizer(tokenizer)
        return getattr(tokenizer, "hf_tokenizer", tokenizer)

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        loop = self._loop
        if loop is None:
            coro.close()
            raise EngineError("This server backend is closed; create a new one.")
        future = loop.submit(coro)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise EngineError("This server backend was closed while scoring; create a new one.") from None
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt while waiting: stop the requests as well
            raise

    async def _start(self) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            headers=self._headers,
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            limits=httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency),
        )
        assert self._loop is not None
        self._loop.client = self._client
        self._semaphore = asyncio.Semaphore(self.max_concurrency)

    def _pick(self, tried: set[str], only: str | None) -> str:
        """The least busy server that is not known to be down, preferring ones this job has not tried."""
        now = time.monotonic()
        with self._lock:
            if only is not None:
                self._servers[only].in_flight += 1
                return only
            self._turn += 1
            n = len(self.base_urls)

            def key(item: tuple[int, str]) -> tuple[bool, bool, int, int]:
                i, url = item
                state = self._servers[url]
                return (url in tried, state.down_until > now, state.in_flight, (i - self._turn) % n)

            url = min(enumerate(self.base_urls), key=key)[1]
            self._servers[url].in_flight += 1
            return url

    def _done(self, url: str, *, failed: bool) -> None:
        with self._lock:
            state = self._servers[url]
            state.in_flight -= 1
            state.down_until = time.monotonic() + _DOWN_SECONDS if failed else 0.0

    async def _attempts(self, what: str, send: Any, only: str | None = None) -> Any:
        """Run ``send(url)`` with retries (on other servers first) and backoff; one ServerError when all fail."""
        from tenacity import (
            AsyncRetrying,
            RetryError,
            retry_if_exception_type,
            stop_after_attempt,
            wait_exponential,
            wait_random,
        )

        tried: set[str] = set()
        errors: list[_Retryable] = []
        # Jitter keeps many clients that failed together from retrying in lockstep.
        exponential = wait_exponential(multiplier=self.backoff, max=self.max_backoff) + wait_random(0, self.backoff)

        def wait(state: Any) -> float:
            after = errors[-1].retry_after if errors else None
            return max(exponential(state), min(after or 0.0, self.max_backoff))

        async def attempt() -> Any:
            url = self._pick(tried, only)
            tried.add(url)
            if len(tried) == len(self.base_urls):
                tried.clear()
            try:
                result = await send(url)
            except _Retryable as exc:
                self._done(url, failed=True)
                errors.append(exc)
                raise
            except BaseException:
                self._done(url, failed=False)
                raise
            self._done(url, failed=False)
            return result

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1), wait=wait, retry=retry_if_exception_type(_Retryable)
        )
        try:
            return await retrying(attempt)
        except RetryError:
            urls = tuple(dict.fromkeys(e.url for e in errors))
            last = "; ".join(f"{e.url}: {e.reason}" for e in errors[-len(urls):])
            raise ServerError(
                f"{what} failed after {len(errors)} attempts on {', '.join(urls)} ({last}). Check that "
                "`vllm serve MODEL --runner pooling --hf-overrides ...` is running and reachable there "
                "(docs/deployment.md).",
                urls=urls,
            ) from None

    async def _request(self, method: str, url: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        client = self._client
        assert client is not None and self._semaphore is not None
        async with self._semaphore:
            try:
                response = await client.request(method, url + path, json=body)
            except httpx.TimeoutException as exc:
                raise _Retryable(url, f"timed out ({type(exc).__name__})") from exc
            except httpx.TransportError as exc:
                raise _Retryable(url, f"{type(exc).__name__}: {exc or 'connection failed'}") from exc
        if response.status_code in _RETRY_STATUS:
            retry_after = response.headers.get("retry-after")
            try:
                after = float(retry_after) if retry_after is not None else None
            except ValueError:
                after = None
            raise _Retryable(url, f"HTTP {response.status_code} {_error_message(response)}", after)
        if response.status_code in (401, 403):
            raise ServerError(
                f"{url} refused the request (HTTP {response.status_code}): pass the server's --api-key as "
                "api_key=...",
                urls=(url,),
            )
        if response.status_code == 404:
            raise ServerError(
                f"{url} has no {path} endpoint (HTTP 404 {_error_message(response)}). Start it with "
                "`vllm serve MODEL --runner pooling --hf-overrides ...`, or pick another endpoint= "
                "('classify', 'rerank', 'score') or served_model_name=.",
                urls=(url,),
            )
        if response.status_code >= 400:
            raise ServerError(
                f"{url}{path} rejected the request (HTTP {response.status_code}): {_error_message(response)}",
                urls=(url,),
            )
        try:
            return response.json()
        except ValueError as exc:
            raise _Retryable(url, f"answered HTTP {response.status_code} with a body that is not JSON") from exc

    async def _probe(self) -> int | None:
        """Ask each server for its models; the smallest max_model_len bounds the prompt length."""

        async def one(url: str) -> int | None:
            body = await self._attempts(
                f"GET {url}/v1/models", lambda u: self._request("GET", u, "/v1/models"), only=url
            )
            cards = body.get("data") if isinstance(body, dict) else None
            if not isinstance(cards, list) or not cards:
                raise ServerError(f"{url}/v1/models listed no model: is this a vLLM server?", urls=(url,))
            if self.served_model_name is not None:
                cards = [c for c in cards if isinstance(c, dict) and c.get("id") == self.served_model_name]
                if not cards:
                    raise ServerError(f"{url} does not serve a model named {self.served_model_name!r}", urls=(url,))
            lengths = [c.get("max_model_len") for c in cards if isinstance(c, dict)]
            return min((n for n in lengths if isinstance(n, int)), default=None)

        results = await asyncio.gather(*(one(url) for url in self.base_urls), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for exc in failures:
            if not isinstance(exc, Exception):
                raise exc
        if len(failures) == len(results):
            if len(failures) == 1:
                raise failures[0]
            raise ServerError(
                "No vLLM server answered: " + " | ".join(str(e) for e in failures),
                urls=self.base_urls,
            )
        for exc in failures:
            logger.warning("qwen3-rerank: a vLLM server is unavailable, continuing with the others: %s", exc)
        lengths = [r for r in results if isinstance(r, int)]
        return min(lengths) if lengths else None

    # -- requests -----------------------------------------------------------------------------------

    def _model_field(self) -> dict[str, Any]:
        return {} if self.served_model_name is None else {"model": self.served_model_name}

    def _plan(self, prompts: Sequence[Sequence[int]]) -> list[_Job]:
        size = self.batch_size
        if self.endpoint == "classify":
            return [
                _Job(
                    positions=tuple(range(start, min(start + size, len(prompts)))),
                    path="/classify",
                    body={**self._model_field(), "input": [list(map(int, p)) for p in prompts[start : start + size]],
                          "add_special_tokens": False},
                )
                for start in range(0, len(prompts), size)
            ]
        triples = [self._texts(p) for p in prompts]
        if any(any(s in text for s in _CONTROL_SPELLINGS for text in triple) for triple in triples):
            warnings.warn(
                f"Some query or document text spells a control token (e.g. <|im_end|>). endpoint={self.endpoint!r} "
                "sends text, which the server tokenizes into real control tokens, so those scores differ from "
                "in-process ones; endpoint='classify' sends token ids and keeps such text plain.",
                UserWarning,
                stacklevel=3,
            )
        # /rerank takes one query per request, /score one instruction (the template's variable).
        groups: dict[tuple[str, ...], list[int]] = {}
        for position, (instruction, query, _) in enumerate(triples):
            key = (instruction, query) if self.endpoint == "rerank" else (instruction,)
            groups.setdefault(key, []).append(position)
        jobs: list[_Job] = []
        for key, positions in groups.items():
            for start in range(0, len(positions), size):
                chunk = tuple(positions[start : start + size])
                documents = [triples[i][2] for i in chunk]
                body: dict[str, Any] = {**self._model_field(), "chat_template_kwargs": {"instruction": key[0]}}
                if self.endpoint == "rerank":
                    body |= {"query": key[1], "documents": documents, "top_n": len(chunk)}
                else:
                    body |= {"queries": [triples[i][1] for i in chunk], "documents": documents}
                jobs.append(_Job(positions=chunk, path=f"/{self.endpoint}", body=body))
        return jobs

    def _texts(self, prompt: Sequence[int]) -> tuple[str, str, str]:
        """(instruction, query, document) whose rendering through :func:`chat_template` is ``prompt``'s text.

        Splitting at the first ``\\n<Query>: `` and ``\\n<Document>: `` is exact even when the user text
        contains those markers: the template puts them back between the parts, so the rendered string is
        the same.
        """
        text = self._tokenizer.decode(list(prompt), skip_special_tokens=False)
        head = "<Instruct>: "
        if not (text.startswith(PREFIX + head) and text.endswith(SUFFIX)):
            raise EngineError("endpoint 'rerank'/'score' got a prompt that PromptBuilder did not make")
        body = text[len(PREFIX) + len(head) : len(text) - len(SUFFIX)]
        instruction, sep_q, rest = body.partition("\n<Query>: ")
        query, sep_d, document = rest.partition("\n<Document>: ")
        if not sep_q or not sep_d:
            raise EngineError(
                "the instruction and query fill max_length, leaving the document no token; endpoint "
                f"{self.endpoint!r} cannot send that prompt as text. Raise max_length or use endpoint='classify'."
            )
        return instruction, query, document

    async def _send(self, job: _Job) -> list[float]:
        """Scores for ``job.positions``, mapped by the response's own indices."""
        n = len(job.positions)

        async def send(url: str) -> list[float]:
            return _parse(self.endpoint, await self._request("POST", url, job.path, job.body), n, url)

        return await self._attempts(f"POST {job.path} ({n} prompts)", send)

    async def _run_jobs(self, jobs: list[_Job], n: int) -> list[float]:
        scores: list[float | None] = [None] * n

        async def run(job: _Job) -> None:
            for position, score in zip(job.positions, await self._send(job), strict=True):
                if scores[position] is not None:
                    raise EngineError(f"prompt {position} was scored twice; please report this bug")
                scores[position] = score

        try:
            async with asyncio.TaskGroup() as group:
                for job in jobs:
                    group.create_task(run(job))
        except BaseExceptionGroup as failed:
            # The first failure is the one to report; TaskGroup has cancelled the other requests.
            raise failed.exceptions[0] from None
        missing = [i for i, s in enumerate(scores) if s is None]
        if missing:
            raise EngineError(f"no score came back for prompts {missing[:10]}; please report this bug")
        return [float(s) for s in scores]  # type: ignore[arg-type]

    # -- ScoringBackend -----------------------------------------------------------------------------

    def score_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        if not prompts:
            return []
        jobs = self._plan(prompts)
        return self._run(self._run_jobs(jobs, len(prompts)))

    async def ascore_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        if not prompts:
            return []
        loop = self._loop
        if loop is None:
            raise EngineError("This server backend is closed; create a new one.")
        jobs = self._plan(prompts)
        try:
            return await asyncio.wrap_future(loop.submit(self._run_jobs(jobs, len(prompts))))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our caller was cancelled
            raise EngineError("This server backend was closed while scoring; create a new one.") from None

    def close(self) -> None:
        """Cancel requests in flight, close the connections and stop the private loop. Idempotent."""
        self._loop = None
        self._finalizer()

    def __enter__(self) -> ServerBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ServerBackend({list(self.base_urls)!r}, endpoint={self.endpoint!r})"


def _error_message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip()
    if isinstance(body, dict):
        error = body.get("error", body.get("message", body))
        if isinstance(error, dict):
            error = error.get("message", error)
        return str(error)[:500]
    return str(body)[:300]


def _parse(endpoint: str, body: Any, n: int, url: str) -> list[float]:
    """Scores in request order from a response, trusting only its index fields; malformed -> retry."""
    if endpoint == "classify":
        items, value_key = (body.get("data") if isinstance(body, dict) else None), "probs"
    elif endpoint == "rerank":
        items, value_key = (body.get("results") if isinstance(body, dict) else None), "relevance_score"
    else:
        items, value_key = (body.get("data") if isinstance(body, dict) else None), "score"
    if not isinstance(items, list) or len(items) != n:
        got = len(items) if isinstance(items, list) else "no list of"
        raise _Retryable(url, f"answered {got} results for {n} prompts")
    scores: list[float | None] = [None] * n
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n or scores[index] is not None:
            raise _Retryable(url, f"answered a result with a missing, repeated or out-of-range index {index!r}")
        value = item.get(value_key)
        if endpoint == "classify":
            if not isinstance(value, list) or len(value) != 1:
                raise ServerError(
                    f"{url} returned {len(value) if isinstance(value, list) else 'no'} class probabilities per "
                    "prompt, not the one yes-vs-no score: start it with --runner pooling --hf-overrides "
                    f"'{json.dumps(HF_OVERRIDES)}'",
                    urls=(url,),
                )
            value = value[0]
        valid = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not valid or not 0 <= value <= 1:
            raise _Retryable(url, f"answered an invalid score {value!r} for index {index}")
        scores[index] = float(value)
    return scores  # type: ignore[return-value]
