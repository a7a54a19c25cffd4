"""What the config file's catalog sections share: exact decimals (quoted in YAML), keys, durations, and problems
reported at the path of the offending key, in the file's spelling."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core import ValidationError as PydanticValidationError

from tollway.billing.periods import parse_cadence
from tollway.errors import ValidationError
from tollway.money import parse_decimal

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
FLOAT_HINT = 'write it in quotes, e.g. "0.000003": YAML reads an unquoted decimal as a float, which loses digits'
Loc = tuple[str | int, ...]


def _decimal(value: object) -> Decimal:
    if isinstance(value, float):
        raise ValueError(FLOAT_HINT)
    try:
        return parse_decimal(value, field="value")
    except ValidationError as exc:
        raise ValueError(exc.message.removeprefix("value ")) from None


Amount = Annotated[Decimal, PlainValidator(_decimal)]
Key = Annotated[str, Field(pattern=KEY_PATTERN)]


def cadence(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_cadence(value, field="value").text
    except ValidationError as exc:
        raise ValueError(exc.message.removeprefix("value ")) from None


def raise_problems(model: str, problems: list[tuple[Loc, str]]) -> None:
    """Report problems at paths below the model being validated (pydantic prefixes the model's own path)."""
    if problems:
        raise PydanticValidationError.from_exception_data(
            model,
            [
                InitErrorDetails(type=PydanticCustomError("catalog", message), loc=loc, input=None)
                for loc, message in problems
            ],
        )


# The pricing validators name the API's fields; the file spells some of them differently.
_FILE_SPELLING = (
    (re.compile(r"\.upToAmount$"), ".upTo"),
    (re.compile(r"\.(unitPrice|flatPrice)\.amount$"), r".\1"),
    (re.compile(r"\.price\.(minimumAmount|maximumAmount)$"), r".\1"),  # on the rate card in the file
    (re.compile(r"\.discounts\.percentage\.percentage$"), ".discounts.percentage"),
    (re.compile(r"\.discounts\.usage\.quantity$"), ".discounts.usage"),
)


def relative_loc(field: str | None, base: str) -> Loc:
    """A domain ValidationError's field (the API's spelling) -> the file's path below `base`:
    `price.tiers[1].upToAmount` -> ("tiers", 1, "up_to") below `price`;
    `rate_card.discounts.percentage.percentage` -> ("discounts", "percentage") below `rate_card`."""
    text = field or ""
    for pattern, spelling in _FILE_SPELLING:
        text = pattern.sub(spelling, text)
    text = text.removeprefix(base).lstrip(".")
    loc: list[str | int] = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", text):
        if part.startswith("["):
            loc.append(int(part[1:-1]))
        else:
            loc.append(re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", part).lower())
    return tuple(loc)


def domain_message(exc: ValidationError) -> str:
    message = exc.message
    if exc.field and message.startswith(exc.field + " "):
        message = message[len(exc.field) + 1 :]
    return message


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
