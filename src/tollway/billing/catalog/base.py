"""What every catalog use case shares: the store, metering (meters and usage) and the clock."""

from __future__ import annotations

from datetime import datetime

from tollway.billing.ports import CatalogStore
from tollway.clock import Clock
from tollway.errors import ValidationError
from tollway.metering.service import MeteringService


class CatalogBase:
    def __init__(self, store: CatalogStore, metering: MeteringService, clock: Clock) -> None:
        self._store = store
        self._metering = metering
        self._clock = clock

    @property
    def store(self) -> CatalogStore:
        return self._store

    @property
    def clock(self) -> Clock:
        """The service's clock (the API reads subscription statuses at its `now`)."""
        return self._clock

    @staticmethod
    def _aware(moment: object, field: str) -> datetime:
        if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
            raise ValidationError(f"{field} must be a date-time with a time zone", field=field)
        return moment
