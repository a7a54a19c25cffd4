"""What an idle notification worker reads: one rules read per detection round (shared by its steps), and no
claim while the outbox has nothing open."""

from __future__ import annotations

from datetime import UTC, datetime

from tollway.adapters.memory.notifications import MemoryNotificationStore
from tollway.adapters.webhooks.sender import HttpWebhookSender, resolve
from tollway.clock import FrozenClock
from tollway.notifications.delivery import DeliveryWorker
from tollway.notifications.model import BUDGET_THRESHOLD, INVOICE_CREATED, Rule
from tollway.notifications.service import NotificationService
from tollway.notifications.worker import NotificationWorker

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


class CountingStore(MemoryNotificationStore):
    def __init__(self) -> None:
        super().__init__()
        self.rule_reads = 0
        self.claims = 0

    async def list_rules(self) -> list[Rule]:
        self.rule_reads += 1
        return await super().list_rules()

    async def claim_deliveries(self, **kwargs: object) -> list:  # type: ignore[type-arg]
        self.claims += 1
        return await super().claim_deliveries(**kwargs)  # type: ignore[arg-type]


async def test_a_round_reads_the_rules_once_and_an_empty_outbox_is_not_claimed() -> None:
    clock = FrozenClock(NOW)
    store = CountingStore()
    service = NotificationService(store, clock, resolve=resolve, allow_private=True)
    seen: list[int] = []

    async def step() -> None:
        await service.active_rules(BUDGET_THRESHOLD)
        await service.active_rules(INVOICE_CREATED)
        seen.append(store.rule_reads)

    delivery = DeliveryWorker(store, HttpWebhookSender(allow_private=True), clock, resolve=resolve)
    worker = NotificationWorker(delivery, [step, step, step], store, clock, rules_read=service.one_rules_read)
    await worker.run_once()
    assert seen == [1, 1, 1]
    assert store.claims == 0
    await service.active_rules(BUDGET_THRESHOLD)  # outside a round: read again
    assert store.rule_reads == 2
    await worker.stop()
