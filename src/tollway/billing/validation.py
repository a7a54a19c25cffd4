"""Validation rules of the catalog: keys, names, e-mail, metadata, plan phases and rate cards (pure).

Each check raises ValidationError naming the offending field in the API's spelling
(`phases[0].rateCards[1].featureKey`), so a client sees exactly what to fix. Price terms are checked by the
pricing package's validators (`tollway.billing.pricing`), the one set of price rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from itertools import pairwise
from typing import Any

import orjson

from tollway.billing.countries import COUNTRY_CODES
from tollway.billing.customers import Address
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.features import Feature
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing import validate_flat_price, validate_usage_terms
from tollway.billing.subscriptions import Subscription
from tollway.errors import ConflictError, ValidationError
from tollway.money import currency_exponent, parse_decimal

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")  # the shape (OpenAPI); the codes themselves: tollway.billing.countries
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
MAX_NAME = 256
MAX_SUBJECT = 255
ENTITLEMENT_AGGREGATIONS = ("SUM", "COUNT")  # a metered limit is a quantity summed over the usage period


def check_aware(moment: object, field: str) -> datetime:
    """A date-time with a time zone (a naive one is refused: every instant is aware UTC)."""
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationError(f"{field} must be a date-time with a time zone", field=field)
    return moment


def check_key(value: object, field: str = "key") -> str:
    if not isinstance(value, str) or not KEY.match(value):
        raise ValidationError(
            f"{field} must be 1 to 64 letters, digits, '-' or '_', starting with a letter or digit; got {value!r}",
            field=field,
        )
    return value


def check_name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{field} must be a non-empty string", field=field)
    if len(value) > MAX_NAME:
        raise ValidationError(f"{field} must be at most {MAX_NAME} characters", field=field)
    return value


def check_metadata(value: Mapping[str, Any] | None, field: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValidationError(f"{field} must be an object with string keys", field=field)
    check_json(value, field)
    return dict(value)


def check_json(value: object, field: str) -> None:
    try:
        orjson.dumps(value, default=_reject, option=_STRICT)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        raise ValidationError(
            f"{field} must be plain JSON (objects, arrays, strings, numbers, booleans)", field=field
        ) from None


_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _reject(value: object) -> Any:
    raise TypeError(type(value).__name__)


def check_currency(code: object, field: str = "currency") -> str:
    try:
        currency_exponent(code)  # type: ignore[arg-type]  # validated here: anything not a known code raises
    except ValidationError as exc:
        raise ValidationError(exc.message, field=field) from None
    assert isinstance(code, str)
    return code


def check_email(value: str | None, field: str = "primaryEmail") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 254 or not EMAIL.match(value):
        raise ValidationError(f"{field} must be an e-mail address like name@example.com; got {value!r}", field=field)
    return value


def check_address(address: Address | None, field: str = "billingAddress") -> Address | None:
    if address is None:
        return None
    if address.country is not None and address.country not in COUNTRY_CODES:
        raise ValidationError(
            f"{field}.country must be an ISO 3166-1 alpha-2 code like 'US'; got {address.country!r}",
            field=f"{field}.country",
        )
    return address


def check_subjects(subjects: Sequence[str], field: str = "usageAttribution.subjectKeys") -> tuple[str, ...]:
    """Each subject a non-empty string of at most 255 characters; repeats are dropped, order kept."""
    if isinstance(subjects, str) or not isinstance(subjects, Sequence):
        raise ValidationError(f"{field} must be a list of subject keys", field=field)
    seen: dict[str, None] = {}
    for subject in subjects:
        if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT:
            raise ValidationError(
                f"{field} entries must be 1 to {MAX_SUBJECT} characters; got {subject!r}", field=field
            )
        seen.setdefault(subject, None)
    return tuple(seen)


# -- plans -----------------------------------------------------------------------------------------

Cadence = Callable[[str, str], object]  # (text, field) -> parsed duration; raises ValidationError naming field


def check_phases(
    phases: Sequence[Phase],
    *,
    features: Mapping[str, Feature],
    meter_aggregations: Mapping[str, str],
    parse_duration: Cadence,
) -> None:
    """The plan's phases: at least one, keys unique, only the last without a duration; every rate card valid.

    `features`: the unarchived features by key; `meter_aggregations`: meter slug -> aggregation name.
    """
    if isinstance(phases, str) or not isinstance(phases, Sequence) or not phases:
        raise ValidationError("a plan needs at least one phase", field="phases")
    phase_keys: set[str] = set()
    for index, phase in enumerate(phases):
        where = f"phases[{index}]"
        if not isinstance(phase, Phase):
            raise ValidationError(f"{where} must be a phase", field=where)
        check_key(phase.key, f"{where}.key")
        if phase.key in phase_keys:
            raise ValidationError(f"phase key {phase.key!r} is used twice", field=f"{where}.key")
        phase_keys.add(phase.key)
        if phase.duration is None:
            if index != len(phases) - 1:
                raise ValidationError("only the last phase may run without a duration", field=f"{where}.duration")
        else:
            parse_duration(phase.duration, f"{where}.duration")
        card_keys: set[str] = set()
        feature_keys: set[str] = set()
        for position, card in enumerate(phase.rate_cards):
            place = f"{where}.rateCards[{position}]"
            if not isinstance(card, RateCard):
                raise ValidationError(f"{place} must be a rate card", field=place)
            check_key(card.key, f"{place}.key")
            if card.key in card_keys:
                raise ValidationError(f"rate card key {card.key!r} is used twice in the phase", field=f"{place}.key")
            card_keys.add(card.key)
            if card.feature_key is not None:
                if card.feature_key in feature_keys:
                    raise ValidationError(
                        f"feature {card.feature_key!r} has two rate cards in the phase", field=f"{place}.featureKey"
                    )
                feature_keys.add(card.feature_key)
            check_rate_card(
                card,
                place,
                features=features,
                meter_aggregations=meter_aggregations,
                parse_duration=parse_duration,
            )


def check_rate_card(
    card: RateCard,
    place: str,
    *,
    features: Mapping[str, Feature],
    meter_aggregations: Mapping[str, str],
    parse_duration: Cadence,
) -> None:
    feature: Feature | None = None
    if card.feature_key is not None:
        feature = features.get(card.feature_key)
        if feature is None:
            raise ValidationError(f"unknown feature {card.feature_key!r}", field=f"{place}.featureKey")
    if card.usage is not None and card.flat is not None:
        raise ValidationError("a rate card has either a usage price or a flat price, not both", field=f"{place}.price")
    if card.usage is not None:
        if feature is None:
            raise ValidationError("a usage-based price needs a feature", field=f"{place}.featureKey")
        if feature.meter_slug is None:
            raise ValidationError(
                f"feature {feature.key!r} has no meter, so its usage cannot be priced", field=f"{place}.featureKey"
            )
        validate_usage_terms(card.usage, field=place)
    if card.flat is not None:
        validate_flat_price(card.flat, field=f"{place}.price")
    if card.billing_cadence is not None:
        parse_duration(card.billing_cadence, f"{place}.billingCadence")
    if card.entitlement is not None:
        check_entitlement(card.entitlement, feature, f"{place}.entitlementTemplate", meter_aggregations, parse_duration)
    check_metadata(card.metadata, f"{place}.metadata")


def check_entitlement(
    template: EntitlementTemplate,
    feature: Feature | None,
    place: str,
    meter_aggregations: Mapping[str, str],
    parse_duration: Cadence,
) -> None:
    if feature is None:
        raise ValidationError("an entitlement needs a feature", field=place)
    if template.type == "metered":
        if feature.meter_slug is None:
            raise ValidationError(f"feature {feature.key!r} has no meter to count usage against", field=place)
        aggregation = meter_aggregations.get(feature.meter_slug)
        if aggregation not in ENTITLEMENT_AGGREGATIONS:
            raise ValidationError(
                f"a metered entitlement needs a SUM or COUNT meter; {feature.meter_slug!r} is {aggregation}",
                field=place,
            )
        if template.limit is None:
            raise ValidationError("a metered entitlement needs a limit", field=f"{place}.issueAfterReset")
        parse_decimal(template.limit, field=f"{place}.issueAfterReset")
        if template.usage_period is not None:
            parse_duration(template.usage_period, f"{place}.usagePeriod")
    elif template.type == "static":
        check_json(template.config, f"{place}.config")
    elif template.type != "boolean":
        raise ValidationError(
            f"entitlement type must be boolean, metered or static; got {template.type!r}", field=f"{place}.type"
        )


# -- subscriptions ---------------------------------------------------------------------------------


def first_overlap(subscriptions: Sequence[Subscription]) -> tuple[Subscription, Subscription] | None:
    """Two subscriptions (of one customer) active at a common instant, if any. Zero-length ones (canceled
    before they began) are never active."""
    live = sorted(
        (s for s in subscriptions if s.active_to is None or s.active_to > s.active_from),
        key=lambda s: (s.active_from, s.id),
    )
    for earlier, later in pairwise(live):
        if earlier.active_to is None or earlier.active_to > later.active_from:
            return earlier, later
    return None


def overlap_conflict(pair: tuple[Subscription, Subscription]) -> ConflictError:
    earlier, later = pair
    return ConflictError(
        f"subscriptions {earlier.id} and {later.id} of one customer would be active at the same time "
        f"(from {later.active_from.isoformat()})",
        field="customer",
    )
