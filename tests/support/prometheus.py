"""Reading a /metrics exposition the way Prometheus does (prometheus_client's parser): label order and number
formatting (`1` or `1.0`) do not matter."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\}?)?")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample: its name, labels and value."""
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def prometheus_value(text: str, selector: str) -> float:
    """The value of the first sample `selector` names: `name` or `name{label="value",...}`, its labels any
    subset of the sample's, in any order."""
    found = _SELECTOR.fullmatch(selector.strip())
    assert found is not None, f"not a selector: {selector}"
    name = found.group(1)
    wanted = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(found.group(2) or "")}
    for sample_name, labels, value in samples(text):
        if sample_name == name and wanted.items() <= labels.items():
            return value
    raise AssertionError(f"metric {selector} not found")
