"""HTTP to a fleet of vLLM servers: the private event loop, the choice of server, retries with backoff.

Nothing here knows about prompts or scores: a caller hands
[`ServerPool.attempts()`][qwen3_rerank.backends.server_transport.ServerPool.attempts] a ``send(url)`` coroutine and gets
its result, or one [`ServerError`][qwen3_rerank.ServerError] when every try failed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Qwen3RerankTypeError, Qwen3RerankValueError, ServerError

if TYPE_CHECKING:
    import httpx

__all__ = ["Retryable", "ServerPool", "normalise_urls"]

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: after a transport error a server is tried last for this long, so one dead server in a fleet
#: does not cost every batch a failed attempt.
DOWN_SECONDS = 5.0


def normalise_urls(base_urls: str | Sequence[str]) -> tuple[str, ...]:
    urls = [base_urls] if isinstance(base_urls, str) else list(base_urls) if isinstance(base_urls, Sequence) else None
    if not urls or not all(isinstance(u, str) for u in urls):
        raise Qwen3RerankTypeError(
            f"base_urls must be a URL or a non-empty list of URLs such as 'http://10.0.0.5:8000', got {base_urls!r}"
        )
    cleaned: list[str] = []
    for url in urls:
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise Qwen3RerankValueError(
                f"base URL {url!r} must start with http:// or https://, e.g. 'http://127.0.0.1:8000'"
            )
        # People paste the OpenAI base URL; vLLM's /classify, /rerank and /score live at the root.
        url = url.removesuffix("/v1")
        if url in cleaned:
            raise Qwen3RerankValueError(f"base URL {url!r} is listed twice; list each server once")
        cleaned.append(url)
    return tuple(cleaned)


class Retryable(Exception):
    """A failure worth another try (connect error, timeout, 5xx, 429, malformed answer).

    Internal: it never leaves [`ServerPool.attempts()`][qwen3_rerank.backends.server_transport.ServerPool.attempts],
    which turns the last ones into a ServerError.
    """

    def __init__(self, url: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"{url}: {reason}")
        self.url, self.reason, self.retry_after = url, reason, retry_after


@dataclass
class _ServerState:
    in_flight: int = 0
    down_until: float = 0.0


class ServerPool:
    """The servers, the pooled ``httpx.AsyncClient`` and the retry policy; used on one private loop
    ([`LoopThread`][qwen3_rerank.backends.loop_thread.LoopThread])."""

    def __init__(
        self,
        base_urls: tuple[str, ...],
        *,
        headers: Mapping[str, str],
        timeout: float,
        connect_timeout: float,
        max_concurrency: int,
        retries: int,
        backoff: float,
        max_backoff: float,
    ) -> None:
        self.base_urls = base_urls
        self.headers = dict(headers)
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.max_concurrency = max_concurrency
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self._servers = {url: _ServerState() for url in base_urls}
        self._turn = 0
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None

    async def start(self) -> httpx.AsyncClient:
        """Create the client and the concurrency bound; must run on the loop that will use them."""
        import httpx

        self._client = httpx.AsyncClient(
            headers=self.headers,
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            limits=httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency),
        )
        self._semaphore = asyncio.Semaphore(self.max_concurrency)
        return self._client

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
            state.down_until = time.monotonic() + DOWN_SECONDS if failed else 0.0

    async def attempts(self, what: str, send: Callable[[str], Awaitable[Any]], only: str | None = None) -> Any:
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
        errors: list[Retryable] = []
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
            except Retryable as exc:
                self._done(url, failed=True)
                errors.append(exc)
                raise
            except BaseException:
                self._done(url, failed=False)
                raise
            self._done(url, failed=False)
            return result

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1), wait=wait, retry=retry_if_exception_type(Retryable)
        )
        try:
            return await retrying(attempt)
        except RetryError:
            urls = tuple(dict.fromkeys(e.url for e in errors))
            last = "; ".join(f"{e.url}: {e.reason}" for e in errors[-len(urls) :])
            raise ServerError(
                f"{what} failed after {len(errors)} attempts on {', '.join(urls)} ({last}). Check that "
                "`vllm serve MODEL --runner pooling --hf-overrides ...` is running and reachable there "
                "(docs/deployment.md).",
                urls=urls,
            ) from None

    async def request(self, method: str, url: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One HTTP request; its JSON body, a Retryable for what another try may fix, else a ServerError."""
        import httpx

        client = self._client
        assert client is not None and self._semaphore is not None
        async with self._semaphore:
            try:
                response = await client.request(method, url + path, json=body)
            except httpx.TimeoutException as exc:
                raise Retryable(url, f"timed out ({type(exc).__name__})") from exc
            except httpx.TransportError as exc:
                raise Retryable(url, f"{type(exc).__name__}: {exc or 'connection failed'}") from exc
        if response.status_code in RETRY_STATUS:
            retry_after = response.headers.get("retry-after")
            try:
                after = float(retry_after) if retry_after is not None else None
            except ValueError:
                after = None
            raise Retryable(url, f"HTTP {response.status_code} {error_message(response)}", after)
        if response.status_code in (401, 403):
            raise ServerError(
                f"{url} refused the request (HTTP {response.status_code}): pass the server's --api-key as api_key=...",
                urls=(url,),
            )
        if response.status_code == 404:
            raise ServerError(
                f"{url} has no {path} endpoint (HTTP 404 {error_message(response)}). Start it with "
                "`vllm serve MODEL --runner pooling --hf-overrides ...`, or pick another endpoint= "
                "('classify', 'rerank', 'score') or served_model_name=.",
                urls=(url,),
            )
        if response.status_code >= 400:
            raise ServerError(
                f"{url}{path} rejected the request (HTTP {response.status_code}): {error_message(response)}",
                urls=(url,),
            )
        try:
            return response.json()
        except ValueError as exc:
            raise Retryable(url, f"answered HTTP {response.status_code} with a body that is not JSON") from exc


def error_message(response: Any) -> str:
    """The server's own words from an error response, cut short."""
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
