"""What a subscription write changed, as the notifications report it (pure): the catalog store records these in
the transaction of the write (its change journal), so a subscription event is never lost nor invented.

- created: a subscription added that no plan change started;
- changed: a subscription ended by a plan change or migration (`replaced_by` set) — `related_id` the new one;
- canceled: a cancellation requested (`canceled_at` newly set), not a replacement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from tollway.billing.subscriptions import Subscription

ChangeKind = Literal["created", "changed", "canceled"]


@dataclass(frozen=True)
class SubscriptionChange:
    id: str
    kind: ChangeKind
    subscription_id: str  # created: the new one; changed: the one replaced; canceled: the one canceled
    related_id: str | None  # changed: the subscription that replaces it
    at: datetime


def changes_of(
    before: Mapping[str, Subscription], changed: Sequence[Subscription], added: Sequence[Subscription]
) -> list[tuple[ChangeKind, str, str | None]]:
    """The changes one write makes: `before` holds the stored versions of `changed`."""
    found: list[tuple[ChangeKind, str, str | None]] = []
    replacing = {s.replaced_by for s in changed if s.replaced_by}
    for subscription in added:
        if subscription.id not in replacing:
            found.append(("created", subscription.id, None))
    for subscription in changed:
        old = before.get(subscription.id)
        if subscription.replaced_by and (old is None or old.replaced_by != subscription.replaced_by):
            found.append(("changed", subscription.id, subscription.replaced_by))
        elif (
            not subscription.replaced_by
            and subscription.canceled_at is not None
            and (old is None or old.canceled_at is None)
        ):
            found.append(("canceled", subscription.id, None))
    return found
