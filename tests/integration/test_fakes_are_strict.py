"""The fake providers refuse what the real APIs refuse, so a request Tollway builds wrongly fails here first.

No Tollway in these tests: the official SDKs (and raw HTTP where an SDK cannot send the mistake) talk to
the fakes directly. The answers are the real APIs' status, error shape and wording.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_upstream import FakeOpenAI, Reply

MESSAGES: Any = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def fake_openai_module() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fake_anthropic_module() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def oai(fake_openai_module: FakeOpenAI) -> Iterator[openai.OpenAI]:
    fake_openai_module.drop_script()
    with openai.OpenAI(base_url=fake_openai_module.base_url, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.mark.parametrize("stream", [openai.NOT_GIVEN, False], ids=["stream-absent", "stream-false"])
def test_openai_refuses_stream_options_without_stream(oai: openai.OpenAI, stream: Any) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=stream, stream_options={"include_usage": True}
        )
    assert caught.value.status_code == 400
    assert caught.value.body == {
        "message": "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "type": "invalid_request_error",
        "param": "stream_options",
        "code": None,
    }


def test_openai_takes_stream_options_on_a_stream(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 1200


def test_responses_report_the_usage_the_test_gave(oai: openai.OpenAI, fake_openai_module: FakeOpenAI) -> None:
    scripted = {
        "input_tokens": 900,
        "input_tokens_details": {"cached_tokens": 256},
        "output_tokens": 77,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 977,
    }
    fake_openai_module.enqueue(Reply(usage=scripted), Reply(usage=scripted))
    response = oai.responses.create(model="gpt-4o", input="Hi")
    with oai.responses.stream(model="gpt-4o", input="Hi") as stream:
        streamed = stream.get_final_response()
    for usage in (response.usage, streamed.usage):
        assert usage is not None
        assert (usage.input_tokens, usage.input_tokens_details.cached_tokens) == (900, 256)
        assert (usage.output_tokens, usage.output_tokens_details.reasoning_tokens, usage.total_tokens) == (77, 5, 977)
    # Chat-shaped usage (the default Reply's) is reported with the same counts in the Responses fields.
    fake_openai_module.enqueue(Reply(usage={"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42}))
    plain = oai.responses.create(model="gpt-4o", input="Hi")
    assert plain.usage is not None
    assert (plain.usage.input_tokens, plain.usage.output_tokens, plain.usage.total_tokens) == (40, 2, 42)


def anthropic_error(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


@pytest.mark.parametrize(
    ("path", "headers", "body", "message"),
    [
        (
            "/v1/messages",
            {},
            {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": MESSAGES},
            "anthropic-version: header is required",
        ),
        (
            "/v1/messages",
            {"anthropic-version": "2023-06-01"},
            {"model": "claude-sonnet-4-5", "messages": MESSAGES},
            "max_tokens: Field required",
        ),
        (
            "/v1/messages/count_tokens",
            {},
            {"model": "claude-sonnet-4-5", "messages": MESSAGES},
            "anthropic-version: header is required",
        ),
    ],
    ids=["messages-without-version", "messages-without-max-tokens", "count-tokens-without-version"],
)
def test_anthropic_refuses_what_the_messages_api_refuses(
    fake_anthropic_module: FakeAnthropic, path: str, headers: dict[str, str], body: dict[str, Any], message: str
) -> None:
    with httpx.Client(base_url=fake_anthropic_module.origin, headers={"x-api-key": "sk-ant-test"}) as http:
        response = http.post(path, json=body, headers=headers)
    assert response.status_code == 400
    assert response.json() == anthropic_error(message)


def test_anthropic_answers_a_complete_request(fake_anthropic_module: FakeAnthropic) -> None:
    headers = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": MESSAGES}
    with httpx.Client(base_url=fake_anthropic_module.origin, headers=headers) as http:
        message = http.post("/v1/messages", json=body)
        counted = http.post("/v1/messages/count_tokens", json={"model": "claude-sonnet-4-5", "messages": MESSAGES})
    assert message.status_code == 200
    assert message.json()["usage"]["output_tokens"] == 503
    assert counted.json() == {"input_tokens": 2095}
