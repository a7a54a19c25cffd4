"""The official openmeter SDK, unchanged, against a live Tollway management API: the walkthrough's catalog
(features, plans, customers, subscriptions) created and read back, then usage ingested and an entitlement
value read, all through the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import openmeter
import pytest
from corehttp.exceptions import HttpResponseError
from fastapi import FastAPI

from tests.support.served import served
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.clock import SystemClock
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog

TOKEN = "sdk-catalog-token"


def management_app() -> FastAPI:
    """The management app on memory stores, with the built-in meters."""
    clock = SystemClock()
    metering = MeteringService(MemoryEventStore(clock), clock)
    asyncio.run(metering.sync_meters([]))  # built-in meters (llm_tokens)
    catalog = build_catalog(MemoryCatalogStore(), metering, clock)
    return create_management_app(
        metering=metering,
        admin_token=TOKEN,
        catalog=catalog,
        api_docs="open",
    )


@pytest.fixture
def client() -> Iterator[Any]:
    with served(management_app()) as base_url:
        yield openmeter.Client(endpoint=base_url, token=TOKEN)


def test_walkthrough_catalog_through_the_openmeter_sdk(client: Any) -> None:
    # features: input tokens of the built-in llm_tokens meter; output tokens of two models (a list: "any of")
    feature = client.features.create(
        {
            "key": "input-tokens",
            "name": "Input tokens",
            "meterSlug": "llm_tokens",
            "meterGroupByFilters": {"type": "input"},
        }
    )
    assert (feature.key, feature.meter_slug, feature.meter_group_by_filters) == (
        "input-tokens",
        "llm_tokens",
        {"type": "input"},
    )
    client.features.create(
        {
            "key": "output-tokens",
            "name": "Output tokens",
            "meterSlug": "llm_tokens",
            "advancedMeterGroupByFilters": {"type": {"$eq": "output"}},
        }
    )

    # Starter: 0.000003 per input token, monthly
    starter = client.plans.create(
        {
            "key": "starter",
            "name": "Starter",
            "currency": "USD",
            "billingCadence": "P1M",
            "phases": [
                {
                    "key": "default",
                    "name": "Default",
                    "duration": None,
                    "rateCards": [
                        {
                            "type": "usage_based",
                            "key": "input-tokens",
                            "name": "Input tokens",
                            "featureKey": "input-tokens",
                            "billingCadence": "P1M",
                            "price": {"type": "unit", "amount": "0.000003"},
                        }
                    ],
                }
            ],
        }
    )
    assert (starter.key, starter.version, starter.status) == ("starter", 1, "draft")
    starter = client.plans.publish(starter.id)
    assert starter.status == "active"

    acme = client.customers.create(
        {"key": "acme", "name": "Acme Corp", "usageAttribution": {"subjectKeys": ["acme-corp"]}, "currency": "USD"}
    )
    assert (acme.name, acme.usage_attribution.subject_keys) == ("Acme Corp", ["acme-corp"])
    started = datetime.now(UTC)
    subscription = client.subscriptions.create({"customerId": acme.id, "plan": {"key": "starter"}})
    assert (subscription.status, subscription.plan.key, subscription.plan.version) == ("active", "starter", 1)
    assert abs(subscription.active_from - started) < timedelta(seconds=5)

    # Pro: graduated output tiers and a hard metered entitlement of 5M tokens a month
    pro = client.plans.create(
        {
            "key": "pro",
            "name": "Pro",
            "currency": "USD",
            "billingCadence": "P1M",
            "phases": [
                {
                    "key": "default",
                    "name": "Default",
                    "duration": None,
                    "rateCards": [
                        {
                            "type": "flat_fee",
                            "key": "platform-fee",
                            "name": "Platform fee",
                            "billingCadence": "P1M",
                            "price": {"type": "flat", "amount": "49", "paymentTerm": "in_advance"},
                        },
                        {
                            "type": "usage_based",
                            "key": "output-tokens",
                            "name": "Output tokens",
                            "featureKey": "output-tokens",
                            "billingCadence": "P1M",
                            "price": {
                                "type": "tiered",
                                "mode": "graduated",
                                "tiers": [
                                    {
                                        "upToAmount": "1000000",
                                        "unitPrice": {"type": "unit", "amount": "0.00001"},
                                        "flatPrice": {"type": "flat", "amount": "0"},
                                    },
                                    {"unitPrice": {"type": "unit", "amount": "0.000008"}},
                                ],
                                "minimumAmount": "10",
                            },
                            "discounts": {"percentage": {"percentage": 10}, "usage": {"quantity": "100000"}},
                            "entitlementTemplate": {
                                "type": "metered",
                                "issueAfterReset": 5000000,
                                "isSoftLimit": False,
                            },
                        },
                    ],
                }
            ],
        }
    )
    pro = client.plans.publish(pro.id)

    # read everything back through the SDK
    # (the SDK reads this union as plain mappings; its models are mappings too, so read by wire name)
    features = client.features.list()
    assert [f["key"] for f in features] == ["input-tokens", "output-tokens"]
    paged = client.features.list(page=1, page_size=1)
    assert (paged["totalCount"], [f["key"] for f in paged["items"]]) == (2, ["input-tokens"])
    assert client.features.get("output-tokens").advanced_meter_group_by_filters["type"].eq == "output"

    read = client.plans.get(pro.id)
    assert (read.name, read.currency, read.status, read.version) == ("Pro", "USD", "active", 1)
    flat_card, usage_card = read.phases[0].rate_cards  # a union the SDK leaves as mappings: read by wire name
    assert (flat_card["type"], flat_card["price"]) == (
        "flat_fee",
        {"type": "flat", "amount": "49", "paymentTerm": "in_advance"},
    )
    assert (usage_card["type"], usage_card["featureKey"]) == ("usage_based", "output-tokens")
    assert usage_card["price"] == {
        "type": "tiered",
        "mode": "graduated",
        "tiers": [
            {
                "upToAmount": "1000000",
                "unitPrice": {"type": "unit", "amount": "0.00001"},
                "flatPrice": {"type": "flat", "amount": "0"},
            },
            {
                "upToAmount": None,
                "unitPrice": {"type": "unit", "amount": "0.000008"},
                "flatPrice": {"type": "flat", "amount": "0"},
            },
        ],
        "minimumAmount": "10",
        "maximumAmount": None,
    }
    assert usage_card["discounts"] == {"percentage": {"percentage": "10"}, "usage": {"quantity": "100000"}}
    assert usage_card["entitlementTemplate"] == {
        "type": "metered",
        "isSoftLimit": False,
        "issueAfterReset": "5000000",
        "usagePeriod": "P1M",
    }
    assert [p.key for p in client.plans.list()] == ["pro", "starter"]
    assert [p.key for p in client.plans.list(status=["active"], key=["starter"])] == ["starter"]

    customer = client.customers.get("acme")
    assert (customer.id, customer.current_subscription_id) == (acme.id, subscription.id)
    listed = client.customers.list(subject="acme-corp")
    assert listed.total_count == 1
    assert [c["key"] for c in listed["items"]] == ["acme"]  # `.items` is the mapping's method on SDK models
    subscriptions = client.customers.list_customer_subscriptions("acme")
    assert [s["id"] for s in subscriptions["items"]] == [subscription.id]
    assert client.subscriptions.get_expanded(subscription.id).plan.key == "starter"

    # move Acme to Pro now: the Starter subscription ends where the Pro one starts
    change = client.subscriptions.change(subscription.id, {"timing": "immediate", "plan": {"key": "pro"}})
    assert change.current.status == "inactive"
    assert (change.next.status, change.next.plan.key) == ("active", "pro")
    assert change.current.active_to == change.next.active_from
    pro_start = change.next.active_from

    # usage for acme-corp through the SDK, after the Pro subscription started
    at = max(pro_start, datetime.now(UTC)) + timedelta(milliseconds=1)
    client.events.ingest_events(
        [
            {
                "specversion": "1.0",
                "id": f"walk-{i}",
                "source": "sdk-walkthrough",
                "type": "llm.tokens",
                "subject": subject,
                "time": at.isoformat(),
                "data": {"tokens": tokens, "type": kind, "model": "gpt-4o", "provider": "openai", "status_code": 200},
            }
            for i, (subject, kind, tokens) in enumerate(
                [
                    ("acme-corp", "output", 1_200_000),
                    ("acme-corp", "output", 300_000),
                    ("acme-corp", "input", 900_000),  # another feature
                    ("globex", "output", 4_000_000),  # another customer
                ]
            )
        ]
    )
    value = client.customer_entitlement.get_customer_entitlement_value("acme", "output-tokens")
    used = 1_200_000 + 300_000
    assert (value.has_access, value.usage, value.balance, value.overage) == (True, used, 5_000_000 - used, 0)
    assert value.balance == 3_500_000


def test_sdk_errors_carry_the_problem(client: Any) -> None:
    with pytest.raises(HttpResponseError) as caught:
        client.plans.create(
            {
                "key": "bad",
                "name": "Bad",
                "currency": "XYZ",
                "billingCadence": "P1M",
                "phases": [{"key": "a", "rateCards": []}],
            }
        )
    assert caught.value.status_code == 400
    assert "unknown currency 'XYZ'" in str(caught.value)  # the problem's detail
    with pytest.raises(HttpResponseError) as missing:
        client.customers.get("nobody")
    assert missing.value.status_code == 404
