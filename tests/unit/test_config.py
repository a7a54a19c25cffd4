from __future__ import annotations

from pathlib import Path

import pytest

from tollway.config.loader import load_config, parse_config
from tollway.errors import ConfigError
from tollway.settings import Settings

GOOD = """
providers:
  - {name: openai, type: openai, api_key: "${OPENAI_API_KEY}"}
  - {name: local, type: simulator}
models:
  - {name: gpt-4o, targets: [{provider: openai, model: gpt-4o}], price: {input: "0.0000025", output: "0.00001"}}
  - {name: demo, targets: [{provider: local, model: demo}]}
consumers:
  - {username: acme-corp, keys: [acme-secret-key]}
features:
  - {key: input-tokens, meter: llm_tokens, filters: {type: input}}
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env or {}, source="c.yaml")
    return caught.value.problems


def test_good_config_reads_env_and_keeps_decimal_prices() -> None:
    config = parse_config(GOOD, {"OPENAI_API_KEY": "sk-x"})
    assert config.providers[0].api_key == "sk-x"
    price = config.models[0].price
    assert price is not None
    assert str(price.input) == "0.0000025"
    assert config.features[0].key == "input-tokens"


def test_missing_env_var_names_the_path() -> None:
    assert problems(GOOD) == ["c.yaml: providers[0].api_key: environment variable OPENAI_API_KEY is not set"]


def test_env_default_is_used() -> None:
    config = parse_config('providers: [{name: p, type: openai, api_key: "${K:-fallback}"}]', {})
    assert config.providers[0].api_key == "fallback"


def test_unknown_field_is_one_line() -> None:
    text = GOOD.replace("type: simulator", "type: simulator, tokens_per_secnd: 5")
    assert problems(text, {"OPENAI_API_KEY": "k"}) == [
        "c.yaml: providers[1].tokens_per_secnd: unknown field 'tokens_per_secnd'; did you mean 'tokens_per_second'?"
    ]


def test_unknown_provider_reference() -> None:
    text = GOOD.replace("provider: local", "provider: lokal")
    assert problems(text, {"OPENAI_API_KEY": "k"}) == [
        "c.yaml: models[1].targets[0].provider: unknown provider 'lokal' (defined: local, openai);"
        " did you mean 'local'?"
    ]


def test_bad_provider_type() -> None:
    lines = problems("providers: [{name: p, type: opnai}]")
    assert len(lines) == 1
    assert lines[0].startswith("c.yaml: providers[0].type: Input should be")


def test_invalid_yaml_names_line() -> None:
    lines = problems("providers: [\n  {name: p\n")
    assert len(lines) == 1
    assert "invalid YAML" in lines[0]
    assert "line" in lines[0]


def test_duplicates_and_consumer_rules() -> None:
    text = """
providers: [{name: local, type: simulator}]
models:
  - {name: demo, targets: [{provider: local, model: demo}]}
  - {name: demo, targets: [{provider: local, model: demo}]}
consumers:
  - {username: a, keys: [same-key-123]}
  - {username: b, keys: [same-key-123], models: [nope]}
"""
    assert problems(text) == [
        "c.yaml: models[1].name: duplicate 'demo'",
        "c.yaml: consumers[1].models: unknown model 'nope'",
        "c.yaml: consumers[1].keys: key is already used by another consumer",
    ]


def test_consumer_needs_a_key() -> None:
    assert problems("consumers: [{username: c}]") == [
        "c.yaml: consumers[0]: a consumer needs at least one entry in keys or key_hashes"
    ]


def test_simulator_refuses_credentials() -> None:
    assert problems("providers: [{name: p, type: simulator, api_key: x}]") == [
        "c.yaml: providers[0]: a simulator provider takes no api_key or base_url"
    ]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml", {})
    assert caught.value.problems == [f"{tmp_path / 'nope.yaml'}: no such file"]


def test_quickstart_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "examples" / "quickstart.yaml", {})
    assert [m.name for m in config.models] == ["demo"]
    assert config.consumers[0].username == "acme-corp"
    assert config.consumers[0].keys == ["acme-secret-key"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TOLLWAY_INVOICE_GRACE_S", "1e300"),  # timedelta(seconds=1e300) overflowed at start
        ("TOLLWAY_INVOICE_DUE_DAYS", "999999999999"),
        ("TOLLWAY_INVOICE_LOOKBACK_DAYS", "-1"),
        ("TOLLWAY_UPSTREAM_TIMEOUT_S", "nan"),
        ("TOLLWAY_BILLING_INTERVAL_S", "inf"),
        ("TOLLWAY_PORT", "\u0668\u0660\u0668\u0660"),  # Arabic-Indic 8080: ASCII digits only
        ("TOLLWAY_STORAGE_NICE", "20"),
        ("TOLLWAY_STORAGE_NICE", "-5"),  # raising the storage process above the gateway: never
    ],
)
def test_duration_and_number_settings_are_bounded_before_use(variable: str, value: str) -> None:
    """Issue 19, finding 5: every duration is bounded before any date arithmetic, settings included."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: value})
    assert [line.split(":")[0] for line in info.value.problems] == [variable]
    assert (
        Settings.from_env({"TOLLWAY_INVOICE_GRACE_S": "0", "TOLLWAY_INVOICE_DUE_DAYS": "36600"}).invoice_due_days
        == 36600
    )
