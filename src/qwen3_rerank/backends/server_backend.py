"""Score through running vLLM servers (``vllm serve MODEL --runner pooling --hf-overrides ...``).

The default endpoint, ``/classify``, receives the token ids made by
[`qwen3_rerank.PromptBuilder`][qwen3_rerank.PromptBuilder], so a server scores byte-identical prompts to the in-process
backend. ``/rerank`` and ``/score`` take text instead: the server renders its ``--chat-template`` and tokenizes the
result itself, so control-token spellings inside documents become control tokens there, and a document cut at
``max_length`` is re-tokenized (see docs/deployment.md).

All HTTP work runs on one private event loop in a daemon thread, which owns the single pooled
``httpx.AsyncClient``. The sync and async paths both submit to it, so in-flight requests are bounded
per backend (not per caller), and the sync path works from inside a running event loop too.

This module is the backend's lifetime and the [`ScoringBackend`][qwen3_rerank.ScoringBackend] face;
``server_transport`` holds the loop, server choice and retries, ``server_requests`` plans the request
bodies, ``server_responses`` reads the answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, Literal

from ..checkpoints import hf_overrides_for, vllm_dtype_options
from ..errors import BackendNotInstalledError, EngineError, Qwen3RerankTypeError, Qwen3RerankValueError, ServerError
from ..validation import check_count
from .loop_thread import LoopThread
from .server_requests import Job, chat_template, plan_requests
from .server_responses import parse_scores
from .server_transport import ServerPool, normalise_urls

__all__ = ["Endpoint", "ServerBackend", "chat_template", "serve_command"]

logger = logging.getLogger(__name__)

Endpoint = Literal["classify", "rerank", "score"]
_ENDPOINTS = ("classify", "rerank", "score")


def serve_command(
    model: str, *, port: int = 8000, host: str = "0.0.0.0", chat_template_path: str | None = None
) -> list[str]:
    """The ``vllm serve`` argv this backend expects (``--chat-template`` only for /rerank and /score).

    A converted ``*-seq-cls`` checkpoint (a local directory, or cached) already is the classifier: it gets
    no ``--hf-overrides``, as in the in-process vLLM backend.
    """
    overrides = hf_overrides_for(model)
    flags = ["--hf-overrides", json.dumps(overrides)] if overrides else []
    # The checkpoint's dtype, as in-process: vLLM's "auto" would run a float32 checkpoint in float16.
    flags += [f"--{name}={value}" for name, value in vllm_dtype_options(model).items()]
    argv = ["vllm", "serve", model, "--runner", "pooling", *flags, "--host", host, "--port", str(port)]
    if chat_template_path is not None:
        argv += ["--chat-template", chat_template_path]
    return argv


def _positive_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise Qwen3RerankValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class ServerBackend:
    """Scores prompts on one or several running vLLM servers.

    Args:
        base_urls: one URL (``"http://10.0.0.5:8000"``) or several; requests go to the least busy one.
        api_key: sent as ``Authorization: Bearer ...`` (``vllm serve --api-key``).
        endpoint: ``"classify"`` (token ids, exact; default), or ``"rerank"`` / ``"score"`` for servers that
            only expose those; these need the server started with ``--chat-template``
            (``chat_template()``) and a tokenizer here to turn
            prompts back into text.
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
        self.base_urls = normalise_urls(base_urls)
        if endpoint not in _ENDPOINTS:
            raise Qwen3RerankValueError(f"endpoint must be one of {', '.join(_ENDPOINTS)}, got {endpoint!r}")
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise Qwen3RerankTypeError("api_key must be a non-empty str or None")
        if served_model_name is not None and not isinstance(served_model_name, str):
            raise Qwen3RerankTypeError(f"served_model_name must be a str or None, got {served_model_name!r}")
        check_count(retries, "retries", minimum=0)
        self.endpoint: Endpoint = endpoint
        self.served_model_name = served_model_name
        self.batch_size = check_count(batch_size, "batch_size")
        self.max_concurrency = check_count(
            4 * len(self.base_urls) if max_concurrency is None else max_concurrency, "max_concurrency"
        )
        self.timeout = _positive_float(timeout, "timeout")
        self.connect_timeout = _positive_float(connect_timeout, "connect_timeout")
        self.retries = retries
        self.backoff = _positive_float(backoff, "backoff")
        self.max_backoff = _positive_float(max_backoff, "max_backoff")
        self._tokenizer = self._load_tokenizer(tokenizer) if endpoint != "classify" else None
        self._pool = ServerPool(
            self.base_urls,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            max_concurrency=self.max_concurrency,
            retries=retries,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
        )
        self._loop: LoopThread | None = LoopThread(
            "qwen3-rerank-http", "This server backend is closed; create a new one."
        )
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
            raise Qwen3RerankValueError(
                "backend='server' needs engine_options={'base_urls': ['http://HOST:PORT', ...]}, the URLs of "
                "running `vllm serve` servers"
            )
        options.setdefault("tokenizer", model)
        try:
            return cls(**options)
        except TypeError as exc:
            if "unexpected keyword" in str(exc):
                raise Qwen3RerankTypeError(f"engine_options for backend='server': {exc}") from None
            raise

    # -- plumbing -----------------------------------------------------------------------------------

    @staticmethod
    def _load_tokenizer(tokenizer: Any) -> Any:
        if tokenizer is None:
            raise Qwen3RerankValueError(
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
        try:
            return loop.run(coro)  # an interrupt while waiting (Ctrl-C) stops the requests as well
        except asyncio.CancelledError:  # close() cancelled what was in flight
            raise EngineError("This server backend was closed while scoring; create a new one.") from None

    async def _start(self) -> None:
        client = await self._pool.start()
        assert self._loop is not None
        self._loop.on_shutdown.append(client.aclose)

    async def _probe(self) -> int | None:
        """Ask each server for its models; the smallest max_model_len bounds the prompt length."""

        async def one(url: str) -> int | None:
            body = await self._pool.attempts(
                f"GET {url}/v1/models", lambda u: self._pool.request("GET", u, "/v1/models"), only=url
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

    def _plan(self, prompts: Sequence[Sequence[int]]) -> list[Job]:
        return plan_requests(
            self.endpoint,
            prompts,
            batch_size=self.batch_size,
            served_model_name=self.served_model_name,
            tokenizer=self._tokenizer,
        )

    async def _send(self, job: Job) -> list[float]:
        """Scores for ``job.positions``, mapped by the response's own indices."""
        n = len(job.positions)

        async def send(url: str) -> list[float]:
            return parse_scores(self.endpoint, await self._pool.request("POST", url, job.path, job.body), n, url)

        return await self._pool.attempts(f"POST {job.path} ({n} prompts)", send)

    async def _run_jobs(self, jobs: list[Job], n: int) -> list[float]:
        scores: list[float | None] = [None] * n

        async def run(job: Job) -> None:
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
            return await loop.arun(self._run_jobs(jobs, len(prompts)))
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
