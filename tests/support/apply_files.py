"""The catalog a `tollway apply` file describes, for the apply tests: a file's text as the desired catalog."""

from __future__ import annotations

from dataclasses import replace

from tollway.billing.apply import DesiredCatalog
from tollway.config.catalog import desired_catalog
from tollway.config.loader import parse_config
from tollway.metering.meters import BUILT_IN_METERS

# Two features, plan `starter` (unit prices for input and output tokens) and customer `acme` subscribed to it.
STARTER = """\
features:
  - {key: input-tokens, meter: llm_tokens, filters: {type: input}}
  - {key: output-tokens, meter: llm_tokens, filters: {type: output}}
plans:
  - key: starter
    name: Starter
    currency: USD
    billing_cadence: P1M
    rate_cards:
      - {feature: input-tokens, price: {type: unit, amount: "0.000003"}}
      - {feature: output-tokens, price: {type: unit, amount: "0.00001"}}
customers:
  - {key: acme, name: Acme Corp, usage_from: [acme-corp], subscription: {plan: starter}}
"""


def desired(text: str) -> DesiredCatalog:
    config = parse_config(text, {})
    return replace(desired_catalog(config.features, config.plans, config.customers), meters=BUILT_IN_METERS)
