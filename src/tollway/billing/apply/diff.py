"""The diff (pure): the desired catalog and a snapshot of the stored one in, the changes (or the problems that
forbid any) out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from tollway.billing.apply.changes import (
    ApplyPlan,
    ArchiveFeature,
    ArchivePlan,
    Change,
    ChangePlan,
    CreateCustomer,
    CreateFeature,
    PublishPlan,
    RenameFeature,
    ReplaceFeature,
    Subscribe,
    SyncMeters,
    UpdateCustomer,
)
from tollway.billing.apply.desired import (
    DesiredCatalog,
    DesiredCustomer,
    DesiredFeature,
    DesiredPlan,
    DesiredSubscription,
    StoredCatalog,
    keep_unset,
)
from tollway.billing.customers import Customer
from tollway.billing.periods import parse_cadence
from tollway.billing.plans import Phase, Plan, RateCard
from tollway.billing.subscriptions import Subscription
from tollway.metering.events import format_time
from tollway.metering.meters import Meter, unknown_filter_values


def _filters(filters: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    return {name: tuple(sorted(values)) for name, values in filters.items()}


def _canonical(cadence: str | None) -> str | None:
    return None if cadence is None else parse_cadence(cadence, field="billingCadence").text


def _card(card: RateCard) -> RateCard:
    entitlement = card.entitlement
    if entitlement is not None:
        entitlement = replace(entitlement, usage_period=_canonical(entitlement.usage_period))
    return replace(card, billing_cadence=_canonical(card.billing_cadence), entitlement=entitlement)


def _content(name: str, description: str, currency: str, cadence: str, phases: Sequence[Phase]) -> tuple[object, ...]:
    return (
        name,
        description,
        currency,
        _canonical(cadence),
        tuple(
            (phase.key, phase.name, _canonical(phase.duration), tuple(_card(c) for c in phase.rate_cards))
            for phase in phases
        ),
    )


def same_plan(stored: Plan, desired: DesiredPlan) -> bool:
    """The published version already says what the file says (name, currency, cadence, phases, rate cards)."""
    return _content(stored.name, stored.description, stored.currency, stored.billing_cadence, stored.phases) == (
        _content(desired.name, desired.description, desired.currency, desired.billing_cadence, desired.phases)
    )


def _customer_changes(stored: Customer, desired: DesiredCustomer) -> tuple[str, ...]:
    changed = [
        name
        for name, before, after in (
            ("name", stored.name, desired.name),
            ("usage_from", tuple(sorted(stored.subjects)), tuple(sorted(desired.subjects))),
            ("email", stored.email, desired.email),
            ("currency", stored.currency, desired.currency),
            ("billing_address", stored.billing_address, desired.billing_address),
            ("description", stored.description, desired.description),
            ("stripe_customer_id", stored.stripe_customer_id, desired.stripe_customer_id),
        )
        if before != after
    ]
    if stored.managed_by != "config":
        changed.append("now managed by config")
    return tuple(changed)


def _meter_changes(desired: Sequence[Meter], stored: Sequence[Meter]) -> SyncMeters | None:
    current = {m.slug: m for m in stored}
    wanted = {m.slug for m in desired}
    created = tuple(m.slug for m in desired if m.slug not in current)
    updated = tuple(m.slug for m in desired if m.slug in current and current[m.slug].to_record() != m.to_record())
    deleted = tuple(m.slug for m in stored if m.managed_by in ("builtin", "config") and m.slug not in wanted)
    if not (created or updated or deleted):
        return None
    return SyncMeters(meters=tuple(desired), created=created, updated=updated, deleted=deleted)


def feature_filter_problems(feature: DesiredFeature, meter: Meter) -> list[str]:
    """A file feature's filters against its meter: each name a group-by dimension, each value one the meter can
    record (known for the built-in meters). Needs no stored data: `tollway check` runs it too."""
    problems = [
        f"{feature.path}.filters.{name}: {name!r} is not a group-by dimension of meter "
        f"{meter.slug!r} (dimensions: {', '.join(sorted(meter.group_by)) or 'none'})"
        for name in feature.filters
        if name not in meter.group_by
    ]
    for line in unknown_filter_values(meter, feature.filters):
        name = line.split(" ", 1)[0]
        problems.append(f"{feature.path}.filters.{name}: {line}")
    return problems


def offline_problems(desired: DesiredCatalog) -> list[str]:
    """The problems `plan_apply` would find whatever the store holds (`tollway check` needs no database): file
    features' filters against file or built-in meters. A feature on a meter the file does not define may use an
    API-made meter, so only the store can tell."""
    meters = {m.slug: m for m in desired.meters or ()}
    problems: list[str] = []
    for feature in desired.features:
        meter = meters.get(feature.meter_slug) if feature.meter_slug is not None else None
        if meter is not None:
            problems.extend(feature_filter_problems(feature, meter))
    return problems


def plan_apply(desired: DesiredCatalog, stored: StoredCatalog, now: datetime) -> ApplyPlan:
    """What applying `desired` to `stored` at `now` would change, or the problems that forbid it."""
    problems: list[str] = []
    notes: list[str] = []
    changes: list[Change] = []

    # meters: the ones the store will have once the file's are synced
    meters = {m.slug: m for m in stored.meters}
    if desired.meters is not None:
        sync = _meter_changes(desired.meters, stored.meters)
        if sync is not None:
            changes.append(sync)
        slugs = {m.slug for m in desired.meters}
        meters = {s: m for s, m in meters.items() if m.managed_by == "api" or s in slugs}
        meters.update({m.slug: m for m in desired.meters})

    published_users: dict[str, list[str]] = {}  # feature key -> published plans using it
    for stored_plan in stored.plans:
        if stored_plan.status == "published":
            for card in stored_plan.rate_cards:
                if card.feature_key is not None:
                    published_users.setdefault(card.feature_key, []).append(
                        f"{stored_plan.key!r} v{stored_plan.version}"
                    )

    # features
    stored_features = {f.key: f for f in stored.features}
    feature_meters: dict[str, str | None] = {f.key: f.meter_slug for f in stored.features}
    for feature in desired.features:
        feature_meters[feature.key] = feature.meter_slug
        if feature.meter_slug is not None:
            meter = meters.get(feature.meter_slug)
            if meter is None:
                problems.append(
                    f"{feature.path}.meter: unknown meter {feature.meter_slug!r} "
                    f"(defined: {', '.join(sorted(meters)) or 'none'})"
                )
            else:
                problems.extend(feature_filter_problems(feature, meter))
        current = stored_features.get(feature.key)
        if current is None:
            changes.append(CreateFeature(feature))
            continue
        changed = tuple(
            name
            for name, differs in (
                ("meter", current.meter_slug != feature.meter_slug),
                ("filters", _filters(current.filters) != _filters(feature.filters)),
            )
            if differs
        )
        if current.managed_by != "config":
            if changed:
                problems.append(
                    f"{feature.path}: feature {feature.key!r} was created through the API with another "
                    f"{' and '.join(changed)}; tollway apply never changes API-managed features "
                    "(use another key, or archive that feature through the API)"
                )
        elif changed:
            users = published_users.get(feature.key)
            if users:
                problems.append(
                    f"{feature.path}: feature {feature.key!r} changed ({', '.join(changed)}) but published plan "
                    f"{', '.join(users)} uses it; a feature cannot change in place: give the new definition "
                    "another key, or archive the plan first"
                )
            else:
                changes.append(ReplaceFeature(current, feature, changed))
        elif current.name != feature.name:
            changes.append(RenameFeature(current, feature.name))

    # plans
    file_features = {f.key for f in desired.features}
    known_features = file_features | set(stored_features)
    versions: dict[str, list[Plan]] = {}
    for stored_plan in sorted(stored.plans, key=lambda p: (p.key, p.version)):
        versions.setdefault(stored_plan.key, []).append(stored_plan)
    published = {p.key: p for p in stored.plans if p.status == "published"}
    final_versions = {key: plan.version for key, plan in published.items()}  # key -> published after apply
    used_by_file: set[str] = set()
    for plan in desired.plans:
        for phase, paths in zip(plan.phases, plan.card_paths or ((),) * len(plan.phases), strict=True):
            for j, card in enumerate(phase.rate_cards):
                path = paths[j] if j < len(paths) else f"{plan.path}.rate_cards[{j}]"
                if card.feature_key is None:
                    continue
                used_by_file.add(card.feature_key)
                if card.feature_key not in known_features:
                    problems.append(
                        f"{path}.feature: unknown feature {card.feature_key!r} "
                        "(define it under features: or through the API)"
                    )
                    continue
                metered = card.usage is not None or (
                    card.entitlement is not None and card.entitlement.type == "metered"
                )
                if metered and feature_meters.get(card.feature_key) is None:
                    problems.append(
                        f"{path}.feature: feature {card.feature_key!r} has no meter; "
                        "a usage price or a metered entitlement needs one"
                    )
        kept = versions.get(plan.key, [])
        current_plan = published.get(plan.key)
        if current_plan is not None and same_plan(current_plan, plan):
            continue
        owner = current_plan or (kept[-1] if kept else None)
        if owner is not None and owner.managed_by != "config":
            problems.append(
                f"{plan.path}: plan {plan.key!r} is managed through the API (v{owner.version}); "
                "tollway apply changes only the plans it created (use another key)"
            )
            continue
        drafts = [p for p in kept if p.status == "draft"]
        stale = next((d for d in drafts if d.managed_by == "config"), None)
        foreign = [d for d in drafts if d.managed_by != "config"]
        if foreign:
            problems.append(
                f"{plan.path}: plan {plan.key!r} has a draft v{foreign[0].version} made through the API; "
                "publish or delete it first"
            )
            continue
        version = max((p.version for p in kept if p is not stale), default=0) + 1
        changes.append(PublishPlan(plan, version, current_plan.version if current_plan is not None else None, stale))
        final_versions[plan.key] = version

    # customers (updates first: one may release a subject that another takes)
    stored_customers = {c.key: c for c in stored.customers}
    desired_customers = [keep_unset(c, stored_customers.get(c.key)) for c in desired.customers]
    owners = {subject: c.key for c in stored.customers for subject in c.subjects}
    wanted_subjects = {c.key: set(c.subjects) for c in desired_customers}
    updates: list[UpdateCustomer] = []
    creates: list[CreateCustomer] = []
    subscriptions: list[Change] = []
    subscribed_keys: set[str] = set()
    for customer in desired_customers:
        for subject in customer.subjects:
            owner_key = owners.get(subject)
            released = owner_key in wanted_subjects and subject not in wanted_subjects[owner_key]
            if owner_key is not None and owner_key != customer.key and not released:
                problems.append(
                    f"{customer.path}.usage_from: subject {subject!r} already belongs to customer {owner_key!r}"
                )
        stored_customer = stored_customers.get(customer.key)
        if stored_customer is None:
            creates.append(CreateCustomer(customer))
        else:
            changed = _customer_changes(stored_customer, customer)
            if changed:
                updates.append(UpdateCustomer(stored_customer, customer, changed))
        wanted = customer.subscription
        if wanted is None:
            continue
        subscribed_keys.add(wanted.plan_key)
        target = final_versions.get(wanted.plan_key)
        if target is None:
            problems.append(
                f"{customer.path}.subscription.plan: unknown plan {wanted.plan_key!r} "
                "(not in the file, and no published version is stored)"
            )
            continue
        if wanted.plan_version is not None and wanted.plan_version != target:
            problems.append(
                f"{customer.path}.subscription.version: plan {wanted.plan_key!r} v{wanted.plan_version} is not "
                f"published (v{target} is, once applied)"
            )
            continue
        change = _subscription_change(customer, wanted, target, stored_customer, stored.subscriptions, now, notes)
        if change is not None:
            subscriptions.append(change)
    updates.sort(key=lambda u: not (set(u.stored.subjects) - set(u.customer.subjects)))
    changes.extend([*updates, *creates, *subscriptions])

    # archives: config plans, then config features, no longer in the file
    file_plans = {p.key for p in desired.plans}
    archived_plans: set[str] = set()
    republished = {c.plan.key for c in changes if isinstance(c, PublishPlan)}
    # plan versions someone is (or will be) billed on: their features must stay
    live = {s.plan_id for s in stored.subscriptions if s.active_to is None or s.active_to > now}
    for key, stored_plan in sorted(published.items()):
        if stored_plan.managed_by != "config" or key in file_plans:
            continue
        if key in subscribed_keys:
            notes.append(f"note: plan {key} is no longer in the file but customers in it subscribe to it: kept")
            continue
        changes.append(ArchivePlan(stored_plan))
        archived_plans.add(key)
    for stored_feature in sorted(stored.features, key=lambda f: f.key):
        if stored_feature.managed_by != "config" or stored_feature.key in file_features:
            continue
        users = [
            f"{p.key!r} v{p.version}" + (" (subscribed)" if p.id in live else "")
            for p in stored.plans
            if any(c.feature_key == stored_feature.key for c in p.rate_cards)
            and (p.id in live or (p.status == "published" and p.key not in archived_plans | republished))
        ]
        if stored_feature.key in used_by_file:
            users.append("a plan in the file")
        if users:
            notes.append(
                f"note: feature {stored_feature.key} is no longer in the file but {', '.join(users)} uses it: kept"
            )
            continue
        changes.append(ArchiveFeature(stored_feature))

    if problems:
        return ApplyPlan(notes=tuple(notes), problems=tuple(problems))
    return ApplyPlan(changes=tuple(changes), notes=tuple(notes))


def _subscription_change(
    customer: DesiredCustomer,
    wanted: DesiredSubscription,
    target: int,
    stored_customer: Customer | None,
    subscriptions: Sequence[Subscription],
    now: datetime,
    notes: list[str],
) -> Change | None:
    mine = [s for s in subscriptions if stored_customer is not None and s.customer_id == stored_customer.id]
    current = next((s for s in mine if s.active_from <= now and (s.active_to is None or now < s.active_to)), None)
    if current is None:
        scheduled = sorted((s for s in mine if s.active_from > now), key=lambda s: s.active_from)
        current = scheduled[0] if scheduled else None
    if current is None:
        start = wanted.start or now
        ended = max((s.active_to for s in mine if s.active_to is not None), default=None)
        if ended is not None and start < ended:
            start = ended  # a subscription that ended later than the file's start: the next one follows it
        return Subscribe(
            customer_key=customer.key,
            plan_key=wanted.plan_key,
            plan_version=target,
            pinned_version=wanted.plan_version,
            active_from=start,
        )
    if current.plan_key != wanted.plan_key:
        if current.active_from > now:
            notes.append(
                f"note: subscription {customer.key} on {current.plan_key} v{current.plan_version} starts "
                f"{format_time(current.active_from)}; the file asks for {wanted.plan_key}: change it through the API"
            )
            return None
        return ChangePlan(customer.key, current, wanted.plan_key, target, wanted.plan_version)
    if current.plan_version != target:
        notes.append(
            f"note: subscription {customer.key} stays on {current.plan_key} v{current.plan_version} "
            f"(v{target} is published; migrating a subscription is explicit)"
        )
    return None
