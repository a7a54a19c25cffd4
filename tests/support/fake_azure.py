"""A fake Azure OpenAI resource: OpenAI's wire format behind deployment URLs that need an api-version.

`POST /openai/deployments/{deployment}/chat/completions?api-version=2024-10-21` with an `api-key` header
(learn.microsoft.com "Azure OpenAI in Azure AI Foundry Models REST API reference"). Replies are FakeOpenAI's.
"""

from __future__ import annotations

from aiohttp import web

from tests.support.fake_upstream import FakeOpenAI
from tests.support.loopback import Handler

API_VERSION = "2024-10-21"


class FakeAzureOpenAI(FakeOpenAI):
    def __init__(self) -> None:
        super().__init__()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.deployments: list[tuple[str, str]] = []  # (deployment, api-version) per call

    def reset(self) -> None:
        super().reset()
        self.deployments.clear()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure(self._chat))
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self._azure(self._embeddings))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()

    def _azure(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            version = request.query.get("api-version")
            if version is None:
                body = b'{"error":{"code":"404","message":"Resource not found"}}'
                return web.Response(status=404, body=body, content_type="application/json")
            self.deployments.append((request.match_info["deployment"], version))
            return await handler(request)

        return wrapped
