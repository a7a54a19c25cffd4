"""The demo's gateway traffic: six questions as acme-corp through the official openai SDK, plain and streamed,
and the tokens each response reported."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from openai import AsyncOpenAI
from rich.table import Table

from tollway.clock import FrozenClock
from tollway.demo.narrator import Narrator
from tollway.demo.setup import API_KEY, MODEL, REQUESTS, DemoFailed, Reply, cached_tokens, prompt, token_count
from tollway.demo.timeline import Timeline
from tollway.money import format_quantity


async def send_requests(narrator: Narrator, clock: FrozenClock, timeline: Timeline, base: str) -> list[Reply]:
    """The six questions through the gateway with the official openai SDK, at the demo clock's times: what each
    response reported."""
    narrator.step("Six requests through the gateway as acme-corp")
    narrator.say(f'The official openai SDK: AsyncOpenAI(base_url="{base}/v1", api_key="{API_KEY}"), model "{MODEL}",')
    narrator.say(
        f"on {timeline.first_request:%Y-%m-%d} from {timeline.first_request:%H:%M} UTC (demo clock), one a minute; "
        "each question comes with a pasted log of support tickets."
    )
    client = AsyncOpenAI(base_url=f"{base}/v1", api_key=API_KEY, max_retries=0)
    replies: list[Reply] = []
    table = Table()
    table.add_column("#", justify="right")
    table.add_column("time")
    table.add_column("mode")
    table.add_column("question (+ ticket log)", no_wrap=True, overflow="ellipsis", max_width=30)
    table.add_column("input tokens", justify="right")
    table.add_column("output tokens", justify="right")
    try:
        for index, (question, streamed) in enumerate(REQUESTS):
            clock.set(timeline.request_at(index))
            text = prompt(index, question)
            reply = await (_stream(client, text) if streamed else _complete(client, text))
            replies.append(reply)
            table.add_row(
                str(index + 1),
                timeline.request_at(index).strftime("%H:%M"),
                "stream" if streamed else "plain",
                question,
                format_quantity(Decimal(reply.input_tokens)),
                format_quantity(Decimal(reply.output_tokens)),
            )
    finally:
        await client.close()
    narrator.console.print(table)
    narrator.say(
        f"The responses reported {token_count(sum(r.input_tokens for r in replies))} input and "
        f"{token_count(sum(r.output_tokens for r in replies))} output tokens in all."
    )
    return replies


async def _complete(client: AsyncOpenAI, prompt: str) -> Reply:
    completion = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}])
    if completion.usage is None:
        raise DemoFailed("the gateway answered without a usage block")
    return Reply(
        prompt=prompt,
        streamed=False,
        answer=completion.choices[0].message.content or "",
        input_tokens=completion.usage.prompt_tokens - cached_tokens(completion.usage),
        output_tokens=completion.usage.completion_tokens,
    )


async def _stream(client: AsyncOpenAI, prompt: str) -> Reply:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts: list[str] = []
    usage: Any = None
    async for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
        if chunk.usage is not None:
            usage = chunk.usage
    if usage is None:
        raise DemoFailed("the stream ended without a usage chunk")
    return Reply(
        prompt=prompt,
        streamed=True,
        answer="".join(parts),
        input_tokens=usage.prompt_tokens - cached_tokens(usage),
        output_tokens=usage.completion_tokens,
    )
