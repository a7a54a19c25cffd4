"""Features on the wire (OpenMeter's shapes), decoded with the offending field named."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tollway.api.wire import Json, Obj, optional_time
from tollway.billing.features import Feature
from tollway.errors import ValidationError


@dataclass(frozen=True)
class FeatureInput:
    key: str
    name: str | None
    meter_slug: str | None
    filters: dict[str, tuple[str, ...]]
    metadata: dict[str, Any]


def decode_feature(body: object) -> FeatureInput:
    obj = Obj(
        body,
        "",
        {"key", "name", "metadata", "meterSlug", "meterGroupByFilters", "advancedMeterGroupByFilters"},
        unsupported={"unitCost"},
    )
    filters: dict[str, tuple[str, ...]] = {}
    simple = obj.get("meterGroupByFilters")
    if simple is not None:
        if not isinstance(simple, dict):
            raise ValidationError("meterGroupByFilters must be an object", field="meterGroupByFilters")
        for name, value in simple.items():
            field = f"meterGroupByFilters.{name}"
            values = value if isinstance(value, list) else [value]  # a list: any of these (Tollway's extension)
            if not values or not all(isinstance(v, str) and v for v in values):
                raise ValidationError(f"{field} must be a string or a non-empty array of strings", field=field)
            filters[name] = tuple(dict.fromkeys(values))
    advanced = obj.get("advancedMeterGroupByFilters")
    if advanced is not None:
        if not isinstance(advanced, dict):
            raise ValidationError("advancedMeterGroupByFilters must be an object", field="advancedMeterGroupByFilters")
        for name, condition in advanced.items():
            path = f"advancedMeterGroupByFilters.{name}"
            if name in filters:
                raise ValidationError(f"{path}: {name!r} is filtered in meterGroupByFilters already", field=path)
            cond = Obj(condition, path, {"$eq", "$in"})
            if cond.has("$eq") == cond.has("$in"):
                raise ValidationError(f"{path} needs exactly one of $eq and $in", field=path)
            eq = cond.text("$eq")
            filters[name] = (eq,) if eq is not None else tuple(dict.fromkeys(cond.strings("$in")))
            if not filters[name]:
                raise ValidationError(f"{path}.$in must not be empty", field=f"{path}.$in")
    return FeatureInput(
        key=obj.req_text("key"),
        name=obj.text("name"),
        meter_slug=obj.text("meterSlug"),
        filters=filters,
        metadata=obj.metadata(),
    )


def encode_feature(feature: Feature) -> Json:
    return {
        "id": feature.id,
        "key": feature.key,
        "name": feature.name,
        "metadata": feature.metadata or None,
        "meterSlug": feature.meter_slug,
        # OpenMeter's map holds one value per name; several values ("any of") are in the advanced filters only
        "meterGroupByFilters": {k: v[0] for k, v in feature.filters.items() if len(v) == 1} or None,
        "advancedMeterGroupByFilters": {
            k: ({"$eq": v[0]} if len(v) == 1 else {"$in": list(v)}) for k, v in feature.filters.items()
        }
        or None,
        "managedBy": feature.managed_by,
        "createdAt": optional_time(feature.created_at),
        "updatedAt": optional_time(feature.updated_at),
        "archivedAt": optional_time(feature.archived_at),
        "deletedAt": None,
    }
