"""The simulator's minimal schema instances validate (jsonschema is the oracle) and are the expected literals."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tollway.gateway.providers.schema_instance import schema_instance

CASES: list[tuple[dict[str, Any], Any]] = [
    ({"type": "string"}, "simulated"),
    ({"type": "string", "minLength": 12}, "simulatedsim"),
    ({"type": "string", "maxLength": 3}, "sim"),
    ({"type": "string", "format": "date-time"}, "2026-01-01T00:00:00Z"),
    ({"type": "string", "pattern": "^[0-9]+$"}, "0"),
    ({"type": "integer", "minimum": 3, "maximum": 9}, 3),
    ({"type": "integer", "exclusiveMinimum": 3}, 4),
    ({"type": "number", "maximum": -2}, -2),
    ({"type": "number", "minimum": 1.5, "multipleOf": 0.5}, 1.5),
    ({"type": "boolean"}, True),
    ({"type": ["null", "integer"]}, 0),
    ({"enum": ["celsius", "fahrenheit"]}, "celsius"),
    ({"const": 7}, 7),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, [0, 0]),
    ({"type": "array", "items": {"type": "integer"}}, []),
    (
        {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"type": "string"}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
        {"city": "simulated", "days": 0},
    ),
    # pydantic's shape: a nested model by $ref, Optional as anyOf with null, a list of nested models
    (
        {
            "$defs": {
                "Address": {
                    "type": "object",
                    "properties": {"street": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                    "required": ["street", "zip"],
                },
                "Role": {"enum": ["admin", "user"], "type": "string"},
            },
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"anyOf": [{"type": "integer", "minimum": 18}, {"type": "null"}]},
                "home": {"$ref": "#/$defs/Address"},
                "roles": {"type": "array", "items": {"$ref": "#/$defs/Role"}, "minItems": 1},
                "others": {"type": "array", "items": {"$ref": "#/$defs/Address"}, "minItems": 1},
            },
            "required": ["name", "age", "home", "roles", "others"],
        },
        {
            "name": "simulated",
            "age": 18,
            "home": {"street": "simulated", "zip": "00000"},
            "roles": ["admin"],
            "others": [{"street": "simulated", "zip": "00000"}],
        },
    ),
    (
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
            ]
        },
        {"a": 0, "b": True},
    ),
]


@pytest.mark.parametrize(("schema", "expected"), CASES)
def test_instance(schema: dict[str, Any], expected: Any) -> None:
    instance = schema_instance(schema)
    assert instance == expected
    jsonschema.validate(instance, schema)
