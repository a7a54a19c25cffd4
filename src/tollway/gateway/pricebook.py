"""Provider prices per token, from the genai-prices data shipped in the package (no network).

Resolved once per (provider type, upstream model) at start; the config's `models[].price`
overrides it. A model the price book does not know has no price: its events carry no cost.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from genai_prices import Usage, calc_price

from tollway.metering.llm import TokenPrice

log = logging.getLogger("tollway.pricebook")

# Tollway provider type -> genai-prices provider id
PROVIDER_IDS = {
    "openai": "openai",
    "azure_openai": "azure",
    "anthropic": "anthropic",
    "gemini": "google",
}
PER_MILLION = Decimal(1_000_000)


def _per_token(value: object) -> Decimal | None:
    """genai-prices gives USD per million tokens, flat or tiered (then the base tier)."""
    if value is None:
        return None
    base = getattr(value, "base", value)
    return base / PER_MILLION if isinstance(base, Decimal) else None


def lookup_context_window(provider_type: str, model: str) -> int | None:
    """The model's context window in tokens, when the price book knows it."""
    provider_id = PROVIDER_IDS.get(provider_type)
    if provider_id is None:
        return None
    try:
        window = calc_price(Usage(input_tokens=1), model, provider_id=provider_id).model.context_window
    except LookupError:
        return None
    return window if isinstance(window, int) and window > 0 else None


def lookup_price(provider_type: str, model: str) -> TokenPrice | None:
    provider_id = PROVIDER_IDS.get(provider_type)
    if provider_id is None:
        return None
    try:
        found = calc_price(Usage(input_tokens=1), model, provider_id=provider_id).model_price
    except LookupError:
        log.info("no price for %s model %r in the price book; set models[].price to record cost", provider_type, model)
        return None
    input_price = _per_token(found.input_mtok)
    output_price = _per_token(found.output_mtok)
    if input_price is None or output_price is None:
        return None
    return TokenPrice(
        input=input_price,
        output=output_price,
        cache_read=_per_token(found.cache_read_mtok),
        cache_write=_per_token(found.cache_write_mtok),
    )
