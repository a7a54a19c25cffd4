from __future__ import annotations

import orjson
import pytest

from tollway.error_shapes import status_of
from tollway.errors import ValidationError
from tollway.gateway.auth import presented_key
from tollway.gateway.requests import parse_chat_request, upstream_chat_body
from tollway.identity.key_index import Identity, KeyIndex, hash_key


def test_key_index_finds_by_digest_only() -> None:
    acme = Identity("acme", None)
    index = KeyIndex.build([(hash_key("acme-secret-key"), acme)])
    assert index.authenticate(b"acme-secret-key") is acme
    assert index.authenticate(b"acme-secret-kez") is None
    assert index.authenticate(b"") is None
    assert "acme-secret-key" not in repr(index.__dict__)


def test_presented_key_headers() -> None:
    assert presented_key([(b"authorization", b"Bearer k1")]) == b"k1"
    assert presented_key([(b"x-api-key", b"k2")]) == b"k2"
    assert presented_key([(b"apikey", b"k3")]) == b"k3"
    assert presented_key([(b"authorization", b"Basic abc")]) is None
    assert presented_key([]) is None


def body(**fields: object) -> bytes:
    return orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


@pytest.mark.parametrize(
    ("raw", "status", "param"),
    [
        (b"{", 400, None),
        (b"\xff\xfe", 400, None),
        (b"[]", 400, None),
        (b"", 400, None),
        (body(stream="yes"), 400, "stream"),
        (body(base_url="http://evil"), 400, "base_url"),
        (body(api_key="sk"), 400, "api_key"),
        (orjson.dumps({"messages": []}), 400, "model"),
        (orjson.dumps({"model": "m"}), 400, "messages"),
        (body(stream_options="x"), 400, "stream_options"),
        (body(stream_options={"include_usage": True}), 400, "stream_options"),
        (body(stream=False, stream_options={}), 400, "stream_options"),
    ],
)
def test_bad_chat_requests(raw: bytes, status: int, param: str | None) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_chat_request(raw)
    assert status_of(caught.value.kind) == status
    assert caught.value.field == param


def test_invalid_utf8_message() -> None:
    with pytest.raises(ValidationError, match="UTF-8"):
        parse_chat_request(b'{"model": "\xff"}')


def test_stream_asks_upstream_for_usage_and_keeps_bytes_otherwise() -> None:
    raw = body()
    request = parse_chat_request(raw)
    assert upstream_chat_body(request, "m", raw)[0] is raw
    streaming = parse_chat_request(body(stream=True))
    sent, payload = upstream_chat_body(streaming, "m", b"")
    assert payload["stream_options"] == {"include_usage": True}
    assert orjson.loads(sent)["stream_options"] == {"include_usage": True}
    assert not streaming.client_wants_usage
    renamed, _ = upstream_chat_body(request, "gpt-4o-2024", raw)
    assert orjson.loads(renamed)["model"] == "gpt-4o-2024"
