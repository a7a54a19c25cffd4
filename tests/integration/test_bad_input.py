"""Bad input gets a clear 4xx in OpenAI's error shape, never reaches the upstream, and records no usage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.support.fake_upstream import FakeOpenAI
from tests.support.net import wait_until
from tests.support.scenario import KEY, client, config_for
from tests.support.stored import calls_stored_through, journal_segments
from tests.support.tollway_process import TollwayProcess

BODY_LIMIT = 4096
MESSAGES: Any = [{"role": "user", "content": "Hi"}]
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake: FakeOpenAI) -> Iterator[TollwayProcess]:
    workdir = tmp_path_factory.mktemp("bad-input")
    process = TollwayProcess(workdir, config_for(fake), env={"TOLLWAY_MAX_BODY_BYTES": str(BODY_LIMIT)}).start()
    yield process
    process.stop()


@pytest.fixture
def http(gateway: TollwayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, headers=AUTH, timeout=10) as http:
        yield http


@pytest.fixture
def sdk(gateway: TollwayProcess) -> Iterator[openai.OpenAI]:
    with client(gateway) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def markers() -> list[str]:
    """The request ids of the metered calls made after each case, in order."""
    return []


@pytest.fixture(autouse=True)
def nothing_recorded(gateway: TollwayProcess, fake: FakeOpenAI, markers: list[str]) -> Iterator[None]:
    """After each case: no upstream call, no usage in the journal (written before any reply) nor the store.

    The store is checked without racing the flusher: a later, metered call is made and, once its record is
    stored, the calls stored are exactly the metered ones (a record of the refused call would be there too).
    """
    yield
    assert fake.received == []
    journal = gateway.workdir / "journal"
    assert set(journal_segments(journal).values()) <= {0}
    with httpx.Client(base_url=gateway.base_url, headers=AUTH, timeout=10) as http:
        later = http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES})
    assert later.status_code == 200, later.text
    markers.append(later.headers["x-request-id"])
    assert calls_stored_through(gateway.env["TOLLWAY_DATABASE_URL"], markers[-1]) == markers
    wait_until(lambda: set(journal_segments(journal).values()) <= {0})  # the later call's record released
    fake.received.clear()


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """Check the OpenAI error shape and return its `error` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"].startswith("req_")
    body = response.json()
    assert list(body) == ["error"]
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    return error


def chat(**fields: Any) -> bytes:
    return orjson.dumps({"model": "gpt-4o", "messages": MESSAGES, **fields})


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        (b'{"model": "gpt-4o", "messages": [', None, "not valid JSON"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "caf\xe9"}]}', None, "not valid UTF-8"),
        (b"", None, "empty"),
        (b"[]", None, "must be a JSON object"),
        (b'"hello"', None, "must be a JSON object"),
        (b"42", None, "must be a JSON object"),
        (orjson.dumps({"messages": MESSAGES}), "model", "model"),
        (orjson.dumps({"model": 4, "messages": MESSAGES}), "model", "model"),
        (orjson.dumps({"model": "gpt-4o"}), "messages", "messages"),
        (chat(messages=[]), "messages", "messages"),
        (chat(messages="Hi"), "messages", "messages"),
        (chat(messages=["Hi"]), "messages[0]", "role"),
        (chat(stream="true"), "stream", "'stream' must be a boolean"),
        (chat(stream=1), "stream", "'stream' must be a boolean"),
        (chat(stream=True, stream_options="usage"), "stream_options", "stream_options"),
        (chat(stream=True, stream_options={"include_usage": "yes"}), "stream_options", "include_usage"),
        (
            chat(stream_options={"include_usage": True}),
            "stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        ),
        (chat(base_url="http://attacker.example/v1"), "base_url", "'base_url' is not allowed"),
        (chat(api_base="http://attacker.example/v1"), "api_base", "'api_base' is not allowed"),
        (chat(api_key="sk-someone-else"), "api_key", "'api_key' is not allowed"),
        (chat(extra_headers={"Authorization": "Bearer x"}), "extra_headers", "'extra_headers' is not allowed"),
    ],
    ids=[
        "malformed-json",
        "invalid-utf8",
        "empty-body",
        "array-body",
        "string-body",
        "number-body",
        "missing-model",
        "model-not-a-string",
        "missing-messages",
        "empty-messages",
        "messages-not-a-list",
        "message-not-an-object",
        "stream-string",
        "stream-number",
        "stream-options-not-an-object",
        "include-usage-not-a-boolean",
        "stream-options-without-stream",
        "base_url",
        "api_base",
        "api_key",
        "extra_headers",
    ],
)
def test_invalid_chat_request_is_a_400(http: httpx.Client, body: bytes, param: str | None, says: str) -> None:
    response = http.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    error = openai_error(response, 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert says in error["message"]


def test_invalid_embeddings_request_is_a_400(http: httpx.Client) -> None:
    error = openai_error(http.post("/v1/embeddings", json={"model": "gpt-4o"}), 400)
    assert error["param"] == "input"
    error = openai_error(http.post("/v1/embeddings", json={"model": "gpt-4o", "input": "x", "api_key": "k"}), 400)
    assert error["param"] == "api_key"


@pytest.mark.parametrize("field", ["base_url", "api_key", "api_base"])
def test_sdk_extra_body_cannot_choose_the_upstream_or_its_credentials(sdk: openai.OpenAI, field: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_body={field: "http://attacker.example/v1"})
    assert caught.value.status_code == 400
    assert caught.value.param == field
    assert f"'{field}'" in caught.value.message


def test_unknown_model_is_a_404(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="gpt-5-turbo-ultra", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert "gpt-5-turbo-ultra" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="gpt-5-turbo-ultra", messages=MESSAGES, stream=True)
    with pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model="nope", input="x")


def test_body_over_the_limit_is_a_413(http: httpx.Client) -> None:
    too_big = chat(padding="x" * BODY_LIMIT)
    error = openai_error(http.post("/v1/chat/completions", content=too_big), 413)
    assert str(BODY_LIMIT) in error["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield too_big[:1000]
        yield too_big[1000:]

    error = openai_error(http.post("/v1/chat/completions", content=chunked()), 413)
    assert str(BODY_LIMIT) in error["message"]


def test_body_at_the_limit_is_not_refused_for_its_size(http: httpx.Client) -> None:
    body = chat(stream="no")
    at_limit = body[:-1] + b" " * (BODY_LIMIT - len(body)) + b"}"
    assert len(at_limit) == BODY_LIMIT
    error = openai_error(http.post("/v1/chat/completions", content=at_limit), 400)
    assert error["param"] == "stream"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/chat/completions"),
        ("PUT", "/v1/chat/completions"),
        ("GET", "/v1/embeddings"),
        ("POST", "/v1/models"),
    ],
)
def test_wrong_method_is_a_405(http: httpx.Client, method: str, path: str) -> None:
    openai_error(http.request(method, path, content=chat()), 405)


@pytest.mark.parametrize("path", ["/v1/completion", "/v1/chat/completions/extra", "/v1/", "/v1/engines/x/completions"])
def test_unknown_v1_path_is_a_404(http: httpx.Client, path: str) -> None:
    error = openai_error(http.post(path, content=chat()), 404)
    assert error["code"] == "unknown_url"
