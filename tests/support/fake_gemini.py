"""A fake Gemini API on loopback, faithful to the documented wire format (ai.google.dev/api/generate-content).

`POST /v1beta/models/{model}:generateContent` answers one GenerateContentResponse;
`:streamGenerateContent?alt=sse` sends `data: <GenerateContentResponse>` events separated by CRLF pairs,
each with `usageMetadata` (the last is the total). promptTokenCount includes cachedContentTokenCount;
thoughtsTokenCount is not part of candidatesTokenCount.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support.loopback import LoopbackServer, write_events

DEFAULT_USAGE: dict[str, int] = {
    "promptTokenCount": 1800,
    "candidatesTokenCount": 250,
    "cachedContentTokenCount": 1024,
    "thoughtsTokenCount": 90,
    "totalTokenCount": 2140,
}
# What Tollway meters for one DEFAULT_USAGE: 1800 prompt tokens of which 1024 cached; 250 candidates + 90
# thoughts of output.
GEMINI_TOKENS = {"input": 776, "cache_read": 1024, "output": 340}


@dataclass
class GeminiReply:
    status: int = 200
    body: Any = None
    text: str = "Hello from Gemini."
    function_call: dict[str, Any] | None = None  # {"name", "args"}
    finish_reason: str = "STOP"
    usage: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_USAGE))
    cut_after: int | None = None


class FakeGemini(LoopbackServer[GeminiReply]):
    def __init__(self) -> None:
        super().__init__(GeminiReply())
        self.base_url = self.origin + "/v1beta"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{call}", self._generate)

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        model, _, method = request.match_info["call"].partition(":")
        reply = self.next_reply()
        if reply.status != 200 or reply.body is not None:
            return web.Response(status=reply.status, body=orjson.dumps(reply.body), content_type="application/json")
        if method == "generateContent":
            parts: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
            if reply.function_call:
                parts.append({"functionCall": reply.function_call})
            return web.Response(
                body=orjson.dumps(_response(model, parts, reply.finish_reason, reply.usage)),
                content_type="application/json",
            )
        if method != "streamGenerateContent" or request.query.get("alt") != "sse":
            return web.Response(status=404, body=b'{"error":{"code":404,"message":"Not found","status":"NOT_FOUND"}}')
        words = reply.text.split(" ") if reply.text else []
        events: list[bytes] = []
        output = 0
        for i, word in enumerate(words):
            output = reply.usage["candidatesTokenCount"] * (i + 1) // (len(words) + 1)
            running = {k: v for k, v in reply.usage.items() if k not in ("candidatesTokenCount", "totalTokenCount")}
            running["candidatesTokenCount"] = output
            events.append(_event(_response(model, [{"text": word if i == 0 else " " + word}], None, running)))
        last: list[dict[str, Any]] = [{"functionCall": reply.function_call}] if reply.function_call else []
        events.append(_event(_response(model, last, reply.finish_reason, reply.usage)))
        return await write_events(request, events, cut_after=reply.cut_after)


def _response(model: str, parts: list[dict[str, Any]], finish: str | None, usage: dict[str, int]) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": "mNQYaMyDDZXg7dcPzc-pqQk",
    }


def _event(body: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(body) + b"\r\n\r\n"
