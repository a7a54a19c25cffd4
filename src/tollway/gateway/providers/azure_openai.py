"""Azure OpenAI: deployment URLs with an api-version, and the `api-key` header.

`POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version=...` (likewise embeddings).
The target's model is the deployment name. The Responses API is reached by translation through chat,
so any api-version works.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from tollway.gateway.providers.base import UpstreamRequest, UpstreamResponse, not_served
from tollway.gateway.providers.openai import DEFAULT_CONNECT_S, OpenAIProvider

DEPLOYMENT_PATHS = frozenset({"/chat/completions", "/embeddings"})


class AzureOpenAIProvider:
    native_paths = DEPLOYMENT_PATHS

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        api_version: str,
        api_key: str | None,
        timeout_s: float,
        headers: dict[str, str] | None = None,
        connect_s: float = DEFAULT_CONNECT_S,
    ) -> None:
        self.name = name
        self._query = "?" + urlencode({"api-version": api_version})
        fixed = {"api-key": api_key} if api_key else {}
        fixed.update(headers or {})
        root = base_url.rstrip("/").removesuffix("/openai") + "/openai"
        self._http = OpenAIProvider(
            name, base_url=root, api_key=None, timeout_s=timeout_s, headers=fixed, connect_s=connect_s
        )

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if request.path not in DEPLOYMENT_PATHS:
            raise not_served(self.name, request.path)
        deployment = quote(str(request.payload.get("model")), safe="")
        path = f"/deployments/{deployment}{request.path}{self._query}"
        routed = UpstreamRequest(
            path=path,
            body=request.body,
            payload=request.payload,
            stream=request.stream,
            request_id=request.request_id,
            timeouts=request.timeouts,
        )
        return await self._http.send(routed)
