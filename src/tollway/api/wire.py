"""Reading request JSON with the offending field named in every refusal, and the wire forms shared by the
management API's codecs (RFC 3339 times, decimal strings, ISO-8601 durations).

Decoding refuses unknown fields and reads JSON numbers as exact decimals.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Coroutine, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute

from tollway import bounded_json
from tollway.billing.periods import parse_cadence
from tollway.errors import ValidationError
from tollway.metering.events import format_time, parse_time
from tollway.money import decimal_text, parse_decimal

T = TypeVar("T")
Json = dict[str, Any]

_CURRENCY = re.compile(r"[A-Z]{3}")


# -- reading JSON --------------------------------------------------------------------------------


def parse_body(raw: bytes) -> object:
    """A request body as JSON, numbers with a fraction read as exact Decimals (never floats)."""
    if not raw.strip():
        raise ValidationError("a JSON body is required", field="body")
    return bounded_json.decode(raw, decimals=True, nul=False)  # NUL, depth, duplicate keys, 64-bit integers, NaN


class BoundedJsonRoute(APIRoute):
    """A route whose body FastAPI decodes into a pydantic model: the body passes the bounded decoder first,
    so a duplicate key, deep nesting or an integer beyond 64 bits is the same 400 as everywhere else (FastAPI's
    own decoding keeps the last of two keys)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            raw = await request.body()  # kept by the request: FastAPI's handler reads it again
            if raw.strip():
                bounded_json.decode(raw, nul=False)
            return await handler(request)

        return checked


class Obj:
    """A JSON object being decoded: typed reads that name the field they read, unknown fields refused.

    `unsupported` lists OpenMeter fields Tollway does not implement: accepted only when null or absent.
    A null value reads as absent.
    """

    def __init__(self, value: object, path: str, allowed: Collection[str], unsupported: Collection[str] = ()) -> None:
        if not isinstance(value, dict):
            raise ValidationError(f"{path or 'the body'} must be a JSON object", field=path or "body")
        for name, item in value.items():
            if name in unsupported and item is not None:
                raise ValidationError(
                    f"{self._join(path, name)} is not supported by Tollway", field=self._join(path, name)
                )
            if name not in allowed and name not in unsupported:
                raise ValidationError(f"unknown field {self._join(path, name)}", field=self._join(path, name))
        self.raw: dict[str, Any] = value
        self.path = path

    @staticmethod
    def _join(path: str, name: str) -> str:
        return f"{path}.{name}" if path else name

    def at(self, name: str) -> str:
        return self._join(self.path, name)

    def error(self, name: str, message: str) -> ValidationError:
        """`<path>.<name> <message>`, naming the field."""
        return ValidationError(f"{self.at(name)} {message}", field=self.at(name))

    def get(self, name: str) -> Any:
        return self.raw.get(name)

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def _missing(self, name: str) -> ValidationError:
        return ValidationError(f"{self.at(name)} is required", field=self.at(name))

    def text(self, name: str, *, required: bool = False, empty: bool = False) -> str | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise self._missing(name)
            return None
        if not isinstance(value, str):
            raise ValidationError(f"{self.at(name)} must be a string", field=self.at(name))
        if not empty and not value.strip():
            raise ValidationError(f"{self.at(name)} must not be empty", field=self.at(name))
        return value

    def req_text(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None
        return value

    def decimal(self, name: str, *, required: bool = False, minimum: Decimal | None = Decimal(0)) -> Decimal | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise self._missing(name)
            return None
        return parse_decimal(value, field=self.at(name), minimum=minimum)

    def req_decimal(self, name: str, *, minimum: Decimal | None = Decimal(0)) -> Decimal:
        value = self.decimal(name, required=True, minimum=minimum)
        assert value is not None
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ValidationError(f"{self.at(name)} must be true or false", field=self.at(name))
        return value

    def integer(self, name: str, *, minimum: int = 1) -> int | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValidationError(f"{self.at(name)} must be an integer >= {minimum}", field=self.at(name))
        return value

    def obj(self, name: str, allowed: Collection[str], unsupported: Collection[str] = ()) -> Obj | None:
        value = self.raw.get(name)
        return None if value is None else Obj(value, self.at(name), allowed, unsupported)

    def choice(self, name: str, options: Sequence[str]) -> str:
        """The value, one of `options` (a missing value is refused too)."""
        return one_of(self.raw.get(name), options, self.at(name))

    def objects(self, name: str, allowed: Collection[str]) -> Iterator[Obj]:
        """A required array of objects, each read in turn (`<path>.<name>[i]`)."""
        for i, value in enumerate(self.items(name, required=True)):
            yield Obj(value, f"{self.at(name)}[{i}]", allowed)

    def items(self, name: str, *, required: bool = False) -> list[Any]:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise self._missing(name)
            return []
        if not isinstance(value, list):
            raise ValidationError(f"{self.at(name)} must be an array", field=self.at(name))
        return value

    def strings(self, name: str) -> list[str]:
        values = self.items(name)
        for i, value in enumerate(values):
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(f"{self.at(name)}[{i}] must be a non-empty string", field=f"{self.at(name)}[{i}]")
        return values

    def metadata(self, name: str = "metadata") -> dict[str, Any]:
        value = self.raw.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValidationError(f"{self.at(name)} must be an object of strings", field=self.at(name))
        return dict(value)

    def duration(self, name: str, *, required: bool = False) -> str | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        return parse_duration(value, self.at(name))

    def time(self, name: str) -> datetime | None:
        value = self.text(name)
        return None if value is None else parse_moment(value, self.at(name))

    def currency(self, name: str = "currency", *, required: bool = False) -> str | None:
        value = self.text(name, required=required)
        if value is not None and _CURRENCY.fullmatch(value) is None:
            raise ValidationError(
                f"{self.at(name)} must be an ISO 4217 code in capitals (USD), got {value!r}", field=self.at(name)
            )
        return value


def parse_duration(value: str, field: str) -> str:
    """An ISO-8601 duration as the catalog takes it (billing cadences, phase durations, usage periods): the
    billing periods' own rule (tollway.billing.periods), so the API and the service agree."""
    parse_cadence(value, field=field)
    return value


def parse_moment(value: str, field: str) -> datetime:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ValidationError(f"{field} {exc}", field=field) from None


def one_of(value: object, allowed: Sequence[T], field: str) -> T:
    for option in allowed:
        if value == option:
            return option
    raise ValidationError(f"{field} must be one of {', '.join(map(str, allowed))}, got {value!r}", field=field)


def optional_time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def optional_decimal(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)
