"""The Stripe webhook rules next to their code: the signed timestamp must be within the tolerance of now on both
sides (a valid signature 301 s in the future is refused like one 301 s in the past), and an event is recorded
under its Stripe event id alone, so the same event received again later, re-signed, is a duplicate.
Signatures are computed here with hmac directly, not with the code under test."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tollway.adapters.memory.invoices import MemoryInvoiceStore
from tollway.adapters.stripe.webhooks import StripeWebhooks, verify_signature
from tollway.clock import FrozenClock
from tollway.errors import ValidationError

SECRET = "whsec_unit_0123456789abcdef"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_UNIX = 1772366400  # 2026-03-01T12:00Z


def signed(payload: bytes, timestamp: int) -> str:
    digest = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(event_id: str, event_type: str = "customer.updated") -> bytes:
    return orjson.dumps({"id": event_id, "object": "event", "type": event_type, "data": {"object": {"id": "cus_1"}}})


def test_now_unix_is_the_literal_time() -> None:
    assert int(NOW.timestamp()) == NOW_UNIX


@pytest.mark.parametrize("skew", [-300, -1, 0, 1, 300])
def test_a_valid_signature_within_the_tolerance_on_either_side_is_accepted(skew: int) -> None:
    payload = event("evt_1")
    assert verify_signature(payload, signed(payload, NOW_UNIX + skew), SECRET, now=NOW) == NOW_UNIX + skew


@pytest.mark.parametrize(
    ("skew", "message"),
    [
        (-301, "Stripe-Signature timestamp is too old (301 s off; tolerance 300 s)"),
        (-86_400, "Stripe-Signature timestamp is too old (86400 s off; tolerance 300 s)"),
        (301, "Stripe-Signature timestamp is too far in the future (301 s off; tolerance 300 s)"),
        (86_400, "Stripe-Signature timestamp is too far in the future (86400 s off; tolerance 300 s)"),
    ],
)
def test_a_valid_signature_outside_the_tolerance_on_either_side_is_refused(skew: int, message: str) -> None:
    payload = event("evt_1")
    with pytest.raises(ValidationError) as refused:
        verify_signature(payload, signed(payload, NOW_UNIX + skew), SECRET, now=NOW)
    assert refused.value.message == message
    assert refused.value.field == "Stripe-Signature"


def test_a_smaller_tolerance_is_also_two_sided() -> None:
    payload = event("evt_1")
    assert verify_signature(payload, signed(payload, NOW_UNIX + 10), SECRET, now=NOW, tolerance_s=10) == NOW_UNIX + 10
    for skew in (-11, 11):
        with pytest.raises(ValidationError, match="tolerance 10 s"):
            verify_signature(payload, signed(payload, NOW_UNIX + skew), SECRET, now=NOW, tolerance_s=10)


class RecordingStore(MemoryInvoiceStore):
    """The memory store, keeping the replay keys the webhook handler asks it to record."""

    def __init__(self, clock: FrozenClock) -> None:
        super().__init__(clock)
        self.recorded: list[str] = []

    async def record_webhook_event(self, event_id: str, *, received_at: datetime) -> bool:
        self.recorded.append(event_id)
        return await super().record_webhook_event(event_id, received_at=received_at)


async def test_the_replay_key_is_the_event_id_whenever_it_arrives() -> None:
    clock = FrozenClock(NOW)
    store = RecordingStore(clock)
    webhooks = StripeWebhooks(secret=SECRET, store=store, clock=clock)
    payload = event("evt_1")

    first = await webhooks.receive(payload, signed(payload, NOW_UNIX))
    assert (first.event_id, first.duplicate) == ("evt_1", False)
    # Stripe sends it again two minutes later, then a day later, each time signed at the time it is sent
    clock.advance(timedelta(minutes=2))
    again = await webhooks.receive(payload, signed(payload, NOW_UNIX + 120))
    clock.advance(timedelta(days=1))
    next_day = await webhooks.receive(payload, signed(payload, NOW_UNIX + 120 + 86_400))
    assert (again.duplicate, next_day.duplicate) == (True, True)
    # another event id is another event
    other = await webhooks.receive(event("evt_2"), signed(event("evt_2"), NOW_UNIX + 120 + 86_400))
    assert other.duplicate is False
    assert store.recorded == ["evt_1", "evt_1", "evt_1", "evt_2"]
