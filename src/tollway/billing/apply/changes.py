"""The changes `tollway apply` plans: one type per kind of change, each with its terraform-plan-style lines and
its (create, update, archive) counts, and the plan that holds them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tollway.billing.apply.desired import (
    DesiredCustomer,
    DesiredFeature,
    DesiredPlan,
)
from tollway.billing.customers import Customer
from tollway.billing.features import Feature
from tollway.billing.plans import Plan
from tollway.billing.subscriptions import Subscription
from tollway.metering.events import format_time
from tollway.metering.meters import Meter


@dataclass(frozen=True)
class SyncMeters:
    meters: tuple[Meter, ...]
    created: tuple[str, ...]
    updated: tuple[str, ...]
    deleted: tuple[str, ...]

    @property
    def lines(self) -> list[str]:
        return (
            [f"+ meter {slug}" for slug in self.created]
            + [f"~ meter {slug}" for slug in self.updated]
            + [f"- meter {slug} (deleted with its rollups)" for slug in self.deleted]
        )

    @property
    def counts(self) -> tuple[int, int, int]:
        return len(self.created), len(self.updated), len(self.deleted)


@dataclass(frozen=True)
class CreateFeature:
    feature: DesiredFeature

    @property
    def lines(self) -> list[str]:
        return [f"+ feature {self.feature.key}"]

    counts = (1, 0, 0)


@dataclass(frozen=True)
class ReplaceFeature:
    stored: Feature
    feature: DesiredFeature
    changed: tuple[str, ...]

    @property
    def lines(self) -> list[str]:
        return [f"-/+ feature {self.feature.key} ({', '.join(self.changed)}: archived and created again)"]

    counts = (1, 0, 1)


@dataclass(frozen=True)
class RenameFeature:
    stored: Feature
    name: str

    @property
    def lines(self) -> list[str]:
        return [f"~ feature {self.stored.key} (name)"]

    counts = (0, 1, 0)


@dataclass(frozen=True)
class ArchiveFeature:
    stored: Feature

    @property
    def lines(self) -> list[str]:
        return [f"- feature {self.stored.key} (archived: no longer in the file)"]

    counts = (0, 0, 1)


@dataclass(frozen=True)
class PublishPlan:
    plan: DesiredPlan
    version: int
    previous: int | None  # the published version this one archives
    stale_draft: Plan | None = None  # a draft left by an apply that failed before publishing: deleted first

    @property
    def lines(self) -> list[str]:
        archived = f"; v{self.previous} archived" if self.previous is not None else ""
        return [f"+ plan {self.plan.key} v{self.version} (published{archived})"]

    counts = (1, 0, 0)


@dataclass(frozen=True)
class ArchivePlan:
    stored: Plan

    @property
    def lines(self) -> list[str]:
        return [f"- plan {self.stored.key} v{self.stored.version} (archived: no longer in the file)"]

    counts = (0, 0, 1)


@dataclass(frozen=True)
class CreateCustomer:
    customer: DesiredCustomer

    @property
    def lines(self) -> list[str]:
        return [f"+ customer {self.customer.key}"]

    counts = (1, 0, 0)


@dataclass(frozen=True)
class UpdateCustomer:
    stored: Customer
    customer: DesiredCustomer
    changed: tuple[str, ...]

    @property
    def lines(self) -> list[str]:
        return [f"~ customer {self.customer.key} ({', '.join(self.changed)})"]

    counts = (0, 1, 0)


@dataclass(frozen=True)
class Subscribe:
    customer_key: str
    plan_key: str
    plan_version: int  # the version it will be on (shown)
    pinned_version: int | None  # the version the file names, if any
    active_from: datetime  # the file's start, else the time of the apply

    @property
    def lines(self) -> list[str]:
        start = format_time(self.active_from)
        return [f"+ subscription {self.customer_key} -> {self.plan_key} v{self.plan_version} from {start}"]

    counts = (1, 0, 0)


@dataclass(frozen=True)
class ChangePlan:
    customer_key: str
    current: Subscription
    plan_key: str
    plan_version: int
    pinned_version: int | None

    @property
    def lines(self) -> list[str]:
        return [
            f"~ subscription {self.customer_key}: {self.current.plan_key} v{self.current.plan_version} -> "
            f"{self.plan_key} v{self.plan_version} (plan change, immediate)"
        ]

    counts = (0, 1, 0)


Change = (
    SyncMeters
    | CreateFeature
    | ReplaceFeature
    | RenameFeature
    | ArchiveFeature
    | PublishPlan
    | ArchivePlan
    | CreateCustomer
    | UpdateCustomer
    | Subscribe
    | ChangePlan
)


@dataclass(frozen=True)
class ApplyPlan:
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def lines(self) -> list[str]:
        """One line per change, terraform-plan style."""
        return [line for change in self.changes for line in change.lines]

    @property
    def summary(self) -> str:
        if not self.changes:
            return "No changes."
        create = sum(change.counts[0] for change in self.changes)
        update = sum(change.counts[1] for change in self.changes)
        archive = sum(change.counts[2] for change in self.changes)
        return f"Apply: {create} to create, {update} to update, {archive} to archive."
