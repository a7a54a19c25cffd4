"""The one decoder for JSON a client sends: the gateway's request bodies, events, management API bodies.

A body is refused (ValidationError, a 400 in the caller's shape) unless everything in it can be
written back exactly by the encoder (orjson) when Tollway rewrites, translates or stores it:

- nesting at most MAX_DEPTH (128) arrays/objects deep (orjson writes at most 254 levels; the margin
  leaves room for the envelopes Tollway wraps a client's JSON in);
- no object with the same key twice, at any depth (the refusal names the key);
- integers within 64 bits (-2^63 .. 2^64-1): kept exact, never turned into floats; larger ones are
  refused rather than rounded;
- finite numbers only: NaN, Infinity and numbers that overflow a double (1e400) are refused;
- UTF-8 text without lone surrogates (`"\\ud800"`).

Fast path (floats wanted, which is every caller but the Decimal ones): orjson parses, then three
checks at C speed decide whether its answer can be kept; anything they cannot vouch for goes to the
exact path below, which also writes every refusal's message:
- integers: orjson turns one beyond 64 bits into a float, so a body with a run of 19 or more digits
  anywhere (strings included: a cheap over-approximation) takes the exact path;
- duplicate keys: orjson keeps the last copy. Re-encoding its value writes one `:` per key kept plus
  those inside strings, so it holds as many `:` as the body (plus the body's `\u003a` escapes) exactly
  when no key was dropped: a dropped key takes its own `:` with it, and nothing adds one;
- depth: written indented (the same encode), no line is indented past MAX_DEPTH levels, or the
  containers are walked;
- orjson refuses NaN, Infinity, numbers that overflow a double, lone surrogates and invalid UTF-8.

Exact path: the standard library's C scanner (it reports duplicate keys and keeps big integers
exact, where orjson keeps the last key and rounds). Either way, bodies with more brackets than
MAX_DEPTH get one walk over their containers for the depth, and every body one orjson encode as the
final check.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import orjson

from tollway.errors import ValidationError

MAX_DEPTH = 128
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _NotFinite(ValueError):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotFinite(text)
    return value


def _no_constant(name: str) -> Any:
    raise _NotFinite(name)


_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19  # 19 digits: the shortest integer that may not fit 64 bits
_COLON_ESCAPES = (b"\\u003a", b"\\u003A")
_SLOW = object()
# Written indented, an item inside n containers starts a line with 2n spaces (strings hold no raw newline):
# without a line inside MAX_DEPTH containers, nothing nests deeper.
_DEEP_LINE = b"\n" + b" " * (2 * MAX_DEPTH)


def _fast(raw: bytes) -> Any:
    """orjson's value for `raw` when the checks above vouch for it, else _SLOW (the exact path decides)."""
    if raw.translate(_DIGITS_TO_ZERO).find(_LONG_NUMBER) != -1:
        return _SLOW
    try:
        value = orjson.loads(raw)
        written = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return _SLOW
    colons = raw.count(b":")
    if b"\\" in raw:
        colons += sum(raw.count(escape) for escape in _COLON_ESCAPES)
    if written.count(b":") != colons:
        return _SLOW  # a key appears twice (or an escaped backslash before u003a: the exact path decides)
    if written.find(_DEEP_LINE) != -1 and _deeper_than(value, MAX_DEPTH):
        return _SLOW  # a line indented past MAX_DEPTH levels: only then is the depth walked
    return value


_FLOATS = json.JSONDecoder(object_pairs_hook=_unique, parse_float=_finite_float, parse_constant=_no_constant)
_DECIMALS = json.JSONDecoder(object_pairs_hook=_unique, parse_float=Decimal, parse_constant=_no_constant)


def decode(
    raw: bytes | str,
    *,
    field: str | None = "body",
    what: str = "The request body",
    decimals: bool = False,
    nul: bool = True,
) -> Any:
    """`raw` as JSON under the rules above; numbers with a fraction as floats, or as exact Decimals.

    `nul=False` also refuses U+0000 in any key or string (what Tollway stores: PostgreSQL text cannot hold
    it, and SQLite would keep a name that no one can type); the gateway forwards prompts as they are.

    Raises ValidationError with what is wrong, naming the offending key or path where there is one, else
    `field` (None for the gateway, whose OpenAI errors name no `param` for a body that does not parse).
    """
    if not decimals:
        try:
            data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
        except UnicodeEncodeError:
            data = b""  # a lone surrogate in a str: the exact path names it
        value = _fast(data) if data else _SLOW
        if value is not _SLOW:
            if not nul and b"\\" in data and b"\\u0000" in data:  # a NUL arrives escaped: memchr first
                where = nul_path(value)
                if where is not None:
                    raise nul_refused(where or field or "body")
            return value
    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError(f"{what} is not valid UTF-8.", field=field) from None
    decoder = _DECIMALS if decimals else _FLOATS
    try:
        value = decoder.decode(text)
    except _DuplicateKey as exc:
        raise ValidationError(
            f"{what} is not valid: the key {exc.key!r} appears twice in one JSON object.", field=exc.key
        ) from None
    except _NotFinite as exc:
        raise ValidationError(
            f"{what} is not valid: {exc.text[:40]} is not a finite JSON number.", field=field
        ) from None
    except RecursionError:
        raise _too_deep(field, what) from None
    except ValueError as exc:  # json.JSONDecodeError
        raise ValidationError(f"{what} is not valid JSON: {exc}", field=field) from None
    if _more_openings_than(text, MAX_DEPTH) and _deeper_than(value, MAX_DEPTH):
        raise _too_deep(field, what)
    try:
        orjson.dumps(value, default=_decimal_text if decimals else None)
    except orjson.JSONEncodeError:
        raise _unwritable(value, field, what) from None
    if not nul and "\\u0000" in text:  # a NUL can only arrive escaped: JSON refuses raw control characters
        where = nul_path(value)
        if where is not None:
            raise nul_refused(where or field or "body")
    return value


def nul_path(value: Any) -> str | None:
    """The path of the first string (or object, for a key) holding U+0000 ("" for the top level), or None."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return path  # the object holding the key (the key itself cannot be shown)
                stack.append((child, f"{path}.{key}" if path else str(key)))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, str) and "\x00" in item:
            return path
    return None


def nul_refused(where: str) -> ValidationError:
    return ValidationError(f"{where} must not contain the NUL character (U+0000).", field=where)


def _too_deep(field: str | None, what: str) -> ValidationError:
    return ValidationError(
        f"{what} is nested too deeply: at most {MAX_DEPTH} levels of arrays and objects.", field=field
    )


def _decimal_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


def _more_openings_than(text: str, limit: int) -> bool:
    """Whether `text` holds more than `limit` of `[` and `{` (strings included): if not, it cannot nest deeper.
    `find` runs at memory speed and stops at the limit, where `count` would read every character slowly."""
    found = 0
    for opening in "[{":
        at = text.find(opening)
        while at != -1:
            found += 1
            if found > limit:
                return True
            at = text.find(opening, at + 1)
    return False


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest more than `limit` deep: one walk, level by level, over containers only."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        below: list[Any] = []
        for container in level:
            for item in container.values() if type(container) is dict else container:
                kind = type(item)
                if kind is dict or kind is list:
                    below.append(item)
        if not below:
            return False
        level = below
    return bool(level)


def _unwritable(value: Any, field: str | None, what: str) -> ValidationError:
    """Why orjson cannot write a decoded value: an integer beyond 64 bits or a lone surrogate, named by path."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not _writable_text(key):
                    return _bad_text(path or field or "body", what)
                stack.append((child, f"{path}.{key}" if path else str(key)))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, int) and not isinstance(item, bool) and not INT_MIN <= item <= INT_MAX:
            where = path or field or "body"
            return ValidationError(
                f"{what} is not valid: {where} is an integer beyond 64 bits "
                f"({INT_MIN} to {INT_MAX}); send it as a string.",
                field=where,
            )
        elif isinstance(item, str) and not _writable_text(item):
            return _bad_text(path or field or "body", what)
    return ValidationError(f"{what} holds a value that cannot be encoded as JSON.", field=field)


def _writable_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bad_text(where: str, what: str) -> ValidationError:
    return ValidationError(
        f"{what} is not valid: {where} holds a lone UTF-16 surrogate escape, which is not Unicode text.",
        field=where,
    )
