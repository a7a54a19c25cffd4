"""Features: a meter narrowed by group-by filters (create, read, archive).

Built from the catalog store, metering (the meter a feature narrows) and the clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tollway.billing.features import Feature
from tollway.billing.ports import CatalogStore
from tollway.billing.validation import check_key, check_metadata, check_name
from tollway.clock import Clock
from tollway.errors import ConflictError, NotFoundError, ValidationError
from tollway.ids import new_id
from tollway.metering.meters import unknown_filter_values
from tollway.metering.service import MeteringService


class FeatureService:
    def __init__(self, store: CatalogStore, metering: MeteringService, clock: Clock) -> None:
        self._store = store
        self._metering = metering
        self._clock = clock

    async def create_feature(
        self,
        *,
        key: str,
        name: str | None = None,
        meter_slug: str | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        managed_by: str = "api",
    ) -> Feature:
        """The meter must exist and each filter name must be one of its group-by dimensions."""
        check_key(key)
        name = check_name(name if name is not None else key)
        checked = await self._check_filters(meter_slug, filters)
        meta = check_metadata(metadata)
        existing = await self._store.get_feature(key)
        if existing is not None and existing.key == key and not existing.archived:
            raise ConflictError(f"feature {key!r} already exists", field="key")
        now = self._clock.now()
        feature = Feature(
            id=new_id(now),
            key=key,
            name=name,
            meter_slug=meter_slug,
            filters=checked,
            metadata=meta,
            managed_by=managed_by,
            created_at=now,
            updated_at=now,
        )
        await self._store.insert_feature(feature)
        return feature

    async def _check_filters(
        self, meter_slug: str | None, filters: Mapping[str, Sequence[str]] | None
    ) -> dict[str, tuple[str, ...]]:
        field = "meterGroupByFilters"
        if meter_slug is None:
            if filters:
                raise ValidationError("filters need a meter (meterSlug)", field=field)
            return {}
        if not isinstance(meter_slug, str):
            raise ValidationError("meterSlug must be a string", field="meterSlug")
        try:
            meter = await self._metering.meter(meter_slug)
        except NotFoundError:
            raise ValidationError(f"unknown meter {meter_slug!r}", field="meterSlug") from None
        checked: dict[str, tuple[str, ...]] = {}
        for dimension, values in (filters or {}).items():
            if dimension not in meter.group_by:
                known = ", ".join(meter.group_by) or "none"
                raise ValidationError(
                    f"meter {meter_slug!r} has no groupBy {dimension!r} (known: {known})", field=field
                )
            listed = (values,) if isinstance(values, str) else tuple(values)
            if not listed or not all(isinstance(v, str) and v for v in listed):
                raise ValidationError(f"filter {dimension!r} needs one or more non-empty strings", field=field)
            checked[dimension] = listed
        if unknown := unknown_filter_values(meter, checked):
            raise ValidationError(f"filter {unknown[0]}", field=field)
        return checked

    async def features(self, *, include_archived: bool = False) -> list[Feature]:
        return await self._store.list_features(include_archived=include_archived)

    async def feature(self, id_or_key: str) -> Feature:
        found = await self._store.get_feature(id_or_key)
        if found is None:
            raise NotFoundError(f"feature {id_or_key!r} not found", field="feature")
        return found

    async def archive_feature(self, id_or_key: str) -> Feature:
        """Refused (ConflictError) while a published plan version uses the feature."""
        feature = await self.feature(id_or_key)
        if feature.archived:
            raise ConflictError(f"feature {feature.key!r} is already archived", field="feature")
        for plan in await self._store.list_plans():
            if plan.status == "published" and any(c.feature_key == feature.key for c in plan.rate_cards):
                raise ConflictError(
                    f"feature {feature.key!r} is used by published plan {plan.key!r} v{plan.version}; "
                    "archive the plan first",
                    field="feature",
                )
        now = self._clock.now()
        archived = replace(feature, archived_at=now, updated_at=now)
        await self._store.update_feature(archived)
        return archived
