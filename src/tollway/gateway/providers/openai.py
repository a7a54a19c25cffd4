"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp server, Together, Groq...)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp

from tollway.gateway.providers.base import TRACE_HEADERS, UpstreamError, UpstreamRequest, relayed_headers

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_CONNECT_S = 10.0
# Every OpenAI API path Tollway serves; an OpenAI-compatible server may serve fewer (provider `endpoints`).
OPENAI_PATHS = frozenset({"/chat/completions", "/completions", "/embeddings", "/responses"})


# What aiohttp (and the sockets under it) raise when an upstream fails. Caught where aiohttp is called (a
# try costs nothing until it raises) and turned into the gateway's UpstreamError by `upstream_error`, the one
# place that maps them (as httpx's map_httpcore_exceptions does for httpcore's). TimeoutError is an OSError.
FAILURES = (TimeoutError, aiohttp.ClientError, OSError)


def upstream_error(exc: BaseException, *, reading: bool) -> UpstreamError:
    """One of FAILURES as the gateway's UpstreamError. Before an answer (connecting, sending, waiting for its
    head) a timeout is the upstream timing out and anything else an unreachable upstream; while an answer
    is read (`reading`), a timeout is the idle timeout and anything else a broken connection. Either way
    `timeout` says which of the gateway's error kinds it is (504 or 502; a cut stream's cause)."""
    timeout = isinstance(exc, TimeoutError)
    if reading:
        if timeout:
            return UpstreamError(f"upstream went silent past the idle timeout: {exc!r}", timeout=True)
        return UpstreamError(f"upstream connection broke: {exc!r}")
    if timeout:
        return UpstreamError("upstream timed out", timeout=True)
    return UpstreamError(f"upstream unreachable: {exc}")


class AiohttpResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.content_type = response.headers.get("Content-Type", "application/json")
        self.content_length = response.content_length

    @property
    def relayed_headers(self) -> list[tuple[bytes, bytes]]:
        return relayed_headers(self._response.raw_headers)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except FAILURES as exc:
            raise upstream_error(exc, reading=True) from exc
        finally:
            self._response.release()

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except FAILURES as exc:
            raise upstream_error(exc, reading=True) from exc
        finally:
            self._response.release()

    def close(self) -> None:
        self._response.close()


class OpenAIProvider:
    """Forwards the request bytes to `<base_url><path>` with the provider's own credentials."""

    native_paths = OPENAI_PATHS

    def __init__(
        self,
        name: str,
        *,
        native_paths: frozenset[str] | None = None,
        base_url: str | None,
        api_key: str | None,
        timeout_s: float,
        headers: Mapping[str, str] | None = None,
        connect_s: float = DEFAULT_CONNECT_S,
    ) -> None:
        self.name = name
        if native_paths is not None:
            self.native_paths = native_paths
        self._connect_s = connect_s
        self._base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._timeout_s = timeout_s
        fixed = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        fixed.update(headers or {})
        if api_key:
            fixed["Authorization"] = f"Bearer {api_key}"
        self._headers = fixed
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_s, sock_read=self._timeout_s)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",)
            )

    async def send(self, request: UpstreamRequest) -> AiohttpResponse:
        if self._session is None:
            await self.start()
        assert self._session is not None
        try:
            headers = {**self._headers, **dict(request.headers)} if request.headers else self._headers
            if traced := TRACE_HEADERS.get():
                headers = {**headers, **dict(traced)}
            url = self._base_url + request.path
            own = request.timeouts
            if own is None:
                response = await self._session.post(url, data=request.body, headers=headers)
            else:  # the target's own connect / idle timeouts
                timeout = aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=own.connect_s or self._connect_s,
                    sock_read=own.idle_s or self._timeout_s,
                )
                response = await self._session.post(url, data=request.body, headers=headers, timeout=timeout)
        except FAILURES as exc:
            raise upstream_error(exc, reading=False) from exc
        return AiohttpResponse(response)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
