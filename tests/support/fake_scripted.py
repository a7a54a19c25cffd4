"""A fake upstream that answers any POST with a scripted status, headers and body: for error paths.

`{auth}` in a scripted body is replaced by the credential the upstream received (the Authorization,
x-api-key or x-goog-api-key header), the way a careless provider echoes it in an error message. A
success answer is OpenAI's chat completion (unary or streamed) or an Anthropic message, by path.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from tests.support.fake_upstream import DEFAULT_USAGE, Reply, chunk_event, completion_body
from tests.support.loopback import LoopbackServer


@dataclass
class Scripted:
    status: int = 200
    body: bytes | None = None  # None: a success answer for the path; `{auth}` is replaced
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    stream_error: bytes | None = None  # streamed: this SSE event (with `{auth}`) after the first chunk


class ScriptedUpstream(LoopbackServer[Scripted]):
    def __init__(self) -> None:
        super().__init__(Scripted())
        self.base_url = self.origin + "/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self._answer)

    def start(self) -> ScriptedUpstream:
        super().start()
        return self

    def reset(self) -> None:
        """Forget the replies left over from an earlier test."""
        while self._script:
            self.next_reply()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        scripted = self.next_reply()
        if scripted.delay_s:
            await asyncio.sleep(scripted.delay_s)
        auth = (
            request.headers.get("Authorization")
            or request.headers.get("x-api-key")
            or request.headers.get("x-goog-api-key")
            or ""
        )
        if scripted.body is not None:
            return web.Response(
                status=scripted.status,
                body=scripted.body.replace(b"{auth}", auth.encode()),
                headers={"Content-Type": "application/json", **scripted.headers},
            )
        model = str(body.get("model"))
        if request.path.endswith("/messages"):
            message = {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": "Hello."}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 3},
            }
            return web.json_response(message, headers=scripted.headers)
        if not body.get("stream"):
            answer = completion_body(model, Reply())
            return web.Response(body=orjson.dumps(answer), content_type="application/json", headers=scripted.headers)
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream", **scripted.headers})
        await response.prepare(request)
        await response.write(chunk_event(model, {"role": "assistant", "content": "Hello"}, None, True))
        if scripted.stream_error is not None:
            await response.write(scripted.stream_error.replace(b"{auth}", auth.encode()))
            await response.write_eof()
            return response
        await response.write(chunk_event(model, {}, "stop", True))
        usage = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": []}
        await response.write(b"data: " + orjson.dumps({**usage, "usage": DEFAULT_USAGE}) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
