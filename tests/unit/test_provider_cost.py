"""ProviderCost: the cost a call nothing limits reports in x-tollway-cost, summed per token type."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tollway.gateway.admission import ProviderCost
from tollway.metering.llm import LlmCall, TokenPrice, TokenUsage
from tollway.money import decimal_text


def call(usage: TokenUsage | None, price: TokenPrice | None) -> LlmCall:
    return LlmCall(
        request_id="req-1",
        subject="acme",
        time=datetime(2026, 12, 8, tzinfo=UTC),
        model="gpt-4o",
        upstream_model="gpt-4o",
        provider="openai",
        route="/v1/chat/completions",
        status_code=200,
        streamed=False,
        usage=usage,
        price=price,
    )


PRICE = TokenPrice(input=Decimal("0.0000025"), output=Decimal("0.00001"))
CACHED = TokenPrice(
    input=Decimal("0.0000025"),
    output=Decimal("0.00001"),
    cache_read=Decimal("0.00000125"),
    cache_write=Decimal("0.000003125"),
)


@pytest.mark.parametrize(
    ("usage", "price", "cost"),
    [
        (TokenUsage(input=1000, output=200), PRICE, "0.0045"),
        # cache tokens at the input price where the model has no cache price of its own
        (TokenUsage(input=1000, output=200, cache_read=2048, cache_write=100), PRICE, "0.00987"),
        (TokenUsage(input=1000, output=200, cache_read=2048, cache_write=100), CACHED, "0.0073725"),
        (TokenUsage(input=0, output=0), CACHED, "0"),
        (TokenUsage(input=1000, output=200, reasoning=150), PRICE, "0.0045"),  # reasoning is within output
        (None, PRICE, "0"),  # no usage reported and none estimated
        (TokenUsage(input=1000, output=200), None, "0"),  # a model without a price
    ],
)
def test_the_cost_is_each_token_type_at_its_price(
    usage: TokenUsage | None, price: TokenPrice | None, cost: str
) -> None:
    reservation = ProviderCost()
    assert reservation.cost is None  # until settled: the header is left out
    reservation.settle(call(usage, price))
    assert reservation.cost is not None
    assert decimal_text(reservation.cost) == cost
    assert reservation.currency == "USD"
