"""The one decoder for client JSON: what it refuses (with the key or path named) and what it keeps exact."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollway import bounded_json
from tollway.errors import ValidationError
from tollway.gateway.requests import parse_chat_request, upstream_chat_body

MESSAGES = b'[{"role": "user", "content": "Hi"}]'


def refusal(raw: bytes | str) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        bounded_json.decode(raw)
    return caught.value


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [129, 254, 300, 1023, 1024, 100_000])
def test_nesting_deeper_than_128_is_refused(depth: int) -> None:
    error = refusal(nested(depth))
    assert "nested too deeply: at most 128 levels" in error.message
    assert error.field == "body"


def test_nesting_of_128_passes_and_re_encodes() -> None:
    value = bounded_json.decode(b'{"a":' * 127 + b"[]" + b"}" * 127)
    assert orjson.dumps(value) == b'{"a":' * 127 + b"[]" + b"}" * 127
    assert bounded_json.decode(nested(128)) is not None


def test_wide_shallow_bodies_pass() -> None:
    body = b"[" + b",".join([b'{"a":[1,{"b":2}]}'] * 5000) + b"]"
    assert len(bounded_json.decode(body)) == 5000


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"model": "allowed", "model": "forbidden"}', "model"),
        (b'{"messages": [{"role": "user", "role": "system"}]}', "role"),
        (b'{"a": {"b": {"c": 1, "d": 2, "c": 3}}}', "c"),
    ],
)
def test_duplicate_keys_are_refused_at_any_depth_naming_the_key(raw: bytes, key: str) -> None:
    error = refusal(raw)
    assert f"the key '{key}' appears twice" in error.message
    assert error.field == key


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"n": 18446744073709551615}', 18446744073709551615),  # 2^64 - 1
        (b'{"n": -9223372036854775808}', -9223372036854775808),  # -2^63
        (b'{"n": 9007199254740993}', 9007199254740993),  # 2^53 + 1: a float would round it
    ],
)
def test_integers_within_64_bits_stay_exact(raw: bytes, value: int) -> None:
    decoded = bounded_json.decode(raw)
    assert decoded == {"n": value}
    assert type(decoded["n"]) is int
    assert orjson.dumps(decoded) == b'{"n":' + str(value).encode() + b"}"


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b'{"n": 18446744073709551617}', "n"),  # 2^64 + 1 (was forwarded as 1.8446744073709552e+19)
        (b'{"a": [1, {"n": -9223372036854775809}]}', "a[1].n"),
        (b"18446744073709551616", "body"),
    ],
)
def test_integers_beyond_64_bits_are_refused_naming_the_path(raw: bytes, path: str) -> None:
    error = refusal(raw)
    assert f"{path} is an integer beyond 64 bits" in error.message
    assert error.field == path


@pytest.mark.parametrize("raw", [b"1e400", b'{"t": -1e400}', b"NaN", b"[Infinity]", b"-Infinity"])
def test_numbers_that_are_not_finite_are_refused(raw: bytes) -> None:
    assert "is not a finite JSON number" in refusal(raw).message


@pytest.mark.parametrize(("raw", "where"), [(b'{"s": "\\ud800"}', "s"), (b'{"\\udc00": 1}', "body")])
def test_lone_surrogates_are_refused(raw: bytes, where: str) -> None:
    error = refusal(raw)
    assert "lone UTF-16 surrogate" in error.message
    assert error.field == where


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b"\xff\xfe", "not valid UTF-8"), (b"", "not valid JSON"), (b'{"a": }', "not valid JSON"), (b"[1,]", "JSON")],
)
def test_malformed_bodies_are_refused(raw: bytes, words: str) -> None:
    assert words in refusal(raw).message


def test_surrogate_pairs_and_decimals_pass() -> None:
    assert bounded_json.decode(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert bounded_json.decode(b'{"p": 0.1}', decimals=True) == {"p": Decimal("0.1")}
    assert bounded_json.decode(b'{"p": 1e400}', decimals=True) == {"p": Decimal("1e400")}


def test_messages_name_what_was_decoded() -> None:
    with pytest.raises(ValidationError) as caught:
        bounded_json.decode('{"x": 1, "x": 2}', field="messages[0]", what="messages[0].function.arguments")
    assert caught.value.message.startswith("messages[0].function.arguments is not valid: the key 'x'")


def test_chat_request_with_duplicate_model_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_chat_request(b'{"model": "allowed", "model": "forbidden", "messages": ' + MESSAGES + b"}")
    assert caught.value.field == "model"


def test_rewritten_chat_body_keeps_64_bit_integers_exact() -> None:
    body = b'{"model": "demo", "stream": true, "seed": 18446744073709551615, "messages": ' + MESSAGES + b"}"
    request = parse_chat_request(body)
    rewritten, _ = upstream_chat_body(request, "upstream-model", body)
    assert b'"seed":18446744073709551615' in rewritten
    parsed: Any = orjson.loads(rewritten)
    assert parsed["model"] == "upstream-model"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"a":1,"b":{"c":2,"c":3}}', "c"),
        (b'{"a\\u003a":1,"a\\u003a":2}', "a:"),  # the key's colon escaped
        (b'{"x":"\\u003a","x":1}', "x"),  # the dropped copy's value holds an escaped colon
        (b'{"a":"\\\\u003a","a":1}', "a"),  # an escaped backslash, then u003a: no colon at all
        (b'{"\\u0061":1,"a":2}', "a"),  # the same key spelled two ways
        (b'[{"b":1},{"b":2,"b":2}]', "b"),  # the same value twice
    ],
)
def test_a_duplicate_key_is_found_whatever_the_escapes(raw: bytes, key: str) -> None:
    assert refusal(raw).field == key


def test_the_fast_path_keeps_what_it_can_vouch_for_and_leaves_the_rest_to_the_exact_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = orjson.dumps(
        [{"id": f"e{n}", "time": "2026-12-01T10:00:00Z", "data": {"tokens": n, "note": "a:b"}} for n in range(50)]
    )
    exact_calls: list[str] = []
    exact = bounded_json._FLOATS.decode

    def counted(text: str) -> Any:
        exact_calls.append(text)
        return exact(text)

    monkeypatch.setattr(bounded_json._FLOATS, "decode", counted)
    assert bounded_json.decode(batch) == orjson.loads(batch)
    assert bounded_json.decode(b'{"k": "\\u003a", "v": 1.5}') == {"k": ":", "v": 1.5}
    assert exact_calls == [], "orjson's answer was kept"
    # 19 digits or more anywhere: orjson would round an integer beyond 64 bits, so the exact path decides.
    assert bounded_json.decode(b'{"id": "12345678901234567890"}') == {"id": "12345678901234567890"}
    assert bounded_json.decode(b"[18446744073709551615]") == [18446744073709551615]
    assert refusal(b"[18446744073709551616]").field == "[0]"
    assert len(exact_calls) == 3


_KEYS = st.sampled_from(["a", "b", "a:", "\\u0061", "\\u003a", "k\\\\u003a", "\u00e9", "id"])
_SCALARS = st.one_of(
    st.sampled_from(["1", "-0", "2.5", "1e3", "true", "null", '"x:y"', '"\\u003a"', '"\\\\u003a"']),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)


def _texts(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pairs = st.lists(st.tuples(_KEYS, children), max_size=4)
    objects = pairs.map(lambda kv: "{" + ", ".join(f'"{k}" :{v}' for k, v in kv) + "}")
    return st.one_of(objects, st.lists(children, max_size=4).map(lambda items: "[" + ",".join(items) + "]"))


@given(st.recursive(_SCALARS, _texts, max_leaves=12))
def test_the_fast_path_answers_as_the_exact_one(text: str) -> None:
    def outcome(decode: Any) -> tuple[str, Any]:
        try:
            return "ok", decode()
        except ValidationError as exc:
            return "refused", exc.field

    exact = bounded_json._FLOATS.decode

    def slow() -> Any:
        try:
            value = exact(text)
        except bounded_json._DuplicateKey as dup:
            raise ValidationError("duplicate", field=dup.key) from None
        orjson.dumps(value)  # beyond 64 bits: refused by both
        return value

    def checked_slow() -> Any:
        try:
            return slow()
        except orjson.JSONEncodeError:
            raise ValidationError("unwritable", field="int") from None

    fast = outcome(lambda: bounded_json.decode(text.encode()))
    reference = outcome(checked_slow)
    assert fast[0] == reference[0], (text, fast, reference)
    if fast[0] == "ok":
        assert fast[1] == reference[1]
