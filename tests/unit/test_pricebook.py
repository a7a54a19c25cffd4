from __future__ import annotations

from decimal import Decimal

from tollway.clock import SystemClock
from tollway.config.loader import parse_config
from tollway.gateway.pricebook import lookup_context_window, lookup_price
from tollway.gateway.providers.simulator import SimulatorProvider
from tollway.wiring.gateway import gateway_state


def test_known_openai_model_has_per_token_prices() -> None:
    price = lookup_price("openai", "gpt-4o")
    assert price is not None
    assert price.input == Decimal("0.0000025")
    assert price.output == Decimal("0.00001")
    assert price.cache_read == Decimal("0.00000125")


def test_unknown_model_or_provider_has_no_price() -> None:
    assert lookup_price("openai", "no-such-model-xyz") is None
    assert lookup_price("simulator", "demo") is None


def test_config_price_overrides_the_book() -> None:
    config = parse_config(
        """
providers: [{name: oa, type: openai, api_key: k}, {name: local, type: simulator}]
models:
  - {name: a, targets: [{provider: oa, model: gpt-4o}]}
  - {name: b, targets: [{provider: oa, model: gpt-4o-mini}], price: {input: "0.000001", output: "0.000002"}}
  - {name: c, targets: [{provider: local, model: demo}]}
""",
        {},
    )
    sim = SimulatorProvider("local", clock=SystemClock(), tokens_per_second=0, reply_tokens=1)
    providers = {"oa": sim, "local": sim}
    state = gateway_state(config, providers)  # type: ignore[arg-type]
    assert state.prices[("oa", "gpt-4o")].input == Decimal("0.0000025")
    assert state.prices[("oa", "gpt-4o-mini")].output == Decimal("0.000002")
    assert ("local", "demo") not in state.prices


def test_context_windows_come_from_the_book_when_it_knows_them() -> None:
    assert lookup_context_window("openai", "gpt-4o") == 128_000
    assert lookup_context_window("anthropic", "claude-sonnet-4-5") == 200_000
    assert lookup_context_window("openai", "no-such-model") is None
    assert lookup_context_window("simulator", "demo") is None
