"""instructor and LangChain's with_structured_output against the quickstart config (the simulator), in process.

Their default modes: instructor forces a tool (tool_choice names it); LangChain sends a strict json_schema
response_format (and can call a function instead). The answer is the pydantic model's minimal instance:
strings "simulated", the first enum member, numbers at their minimum, nested models filled the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import openai
from pydantic import BaseModel, Field

from tests.support.agent_app import KEY, tollway_app
from tests.support.usage_events import request_events


class Address(BaseModel):
    street: str
    zip_code: str = Field(pattern=r"^[0-9]{5}$")


class Person(BaseModel):
    name: str
    role: Literal["admin", "user"]
    age: int = Field(ge=18)
    home: Address
    tags: list[str]
    nickname: str | None = None


EXPECTED = Person(name="simulated", role="admin", age=18, home=Address(street="simulated", zip_code="00000"), tags=[])


async def test_instructor_tools_mode(tmp_path: Path) -> None:
    import instructor  # installed by the Makefile without its pins (see there)

    async with tollway_app(tmp_path) as app, app.http2() as http:
        client = instructor.from_openai(openai.AsyncOpenAI(base_url="http://tollway/v1", api_key=KEY, http_client=http))
        person, completion = await client.chat.completions.create_with_completion(
            model="demo", response_model=Person, messages=[{"role": "user", "content": "Extract: Ada, 36"}]
        )
        assert person.model_dump() == EXPECTED.model_dump()
        usage = (completion.usage.prompt_tokens, completion.usage.completion_tokens)
    assert [(e["input_tokens"], e["output_tokens"]) for e in request_events(app.database)] == [usage]


async def test_langchain_with_structured_output(tmp_path: Path) -> None:
    from langchain_openai import ChatOpenAI

    reported = []
    async with tollway_app(tmp_path) as app, app.http2() as http:
        model = ChatOpenAI(model="demo", base_url="http://tollway/v1", api_key=KEY, http_async_client=http)
        # strict json_schema lists every property as required: the optional nickname is then filled in too
        methods: list[tuple[Literal["json_schema", "function_calling"], str | None]] = [
            ("json_schema", "simulated"),
            ("function_calling", None),
        ]
        for method, nickname in methods:
            structured = model.with_structured_output(Person, method=method, include_raw=True)
            result = await structured.ainvoke("Extract: Ada, 36")
            assert result["parsing_error"] is None
            assert result["parsed"].model_dump() == {**EXPECTED.model_dump(), "nickname": nickname}
            usage = result["raw"].usage_metadata
            reported.append((usage["input_tokens"], usage["output_tokens"]))
    assert [(e["input_tokens"], e["output_tokens"]) for e in request_events(app.database)] == reported
