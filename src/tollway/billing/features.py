"""Features: a meter narrowed by filters on its group-by dimensions — the thing an invoice line prices."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Feature:
    id: str
    key: str
    name: str
    meter_slug: str | None  # None: a feature without usage (a boolean or static entitlement only)
    # dimension -> allowed values: one value is equality (type: output), several are "any of" (model: [a, b])
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    managed_by: str = "api"  # api | config
    created_at: datetime | None = None
    updated_at: datetime | None = None
    archived_at: datetime | None = None

    @property
    def archived(self) -> bool:
        return self.archived_at is not None
