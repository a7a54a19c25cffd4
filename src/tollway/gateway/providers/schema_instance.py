"""A minimal, deterministic instance of a JSON schema: what the simulator puts in tool arguments and JSON answers.

Covers what tool and structured-output schemas use: `type` (one or a list), `enum`, `const`, objects
with `properties` and `required` (only required properties are filled in), arrays with `items` /
`prefixItems` and `minItems`, `anyOf` / `oneOf` (the first branch), `allOf` (merged), local `$ref`
(`#/$defs/...`, `#/definitions/...`), string `minLength` / `maxLength` / `format` / simple `pattern`s,
and number bounds and `multipleOf`. A schema it cannot satisfy still gets an answer of the right type.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_DEPTH = 32
_TEXT = "simulated"
_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "duration": "P1D",
}
_PATTERN_CANDIDATES = ("simulated", "abc123", "a1", "", *(c * n for n in range(1, 17) for c in "0aA"))


def schema_instance(schema: Any) -> Any:
    """A value that validates against `schema` (a JSON schema as parsed JSON)."""
    return _instance(schema, schema, 0)


def _instance(schema: Any, root: Any, depth: int) -> Any:
    if schema is True or not isinstance(schema, dict) or depth > MAX_DEPTH:
        return None if depth > MAX_DEPTH else {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _resolve(ref, root)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _instance({**target, **rest} if isinstance(target, dict) else rest, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            rest = {k: v for k, v in schema.items() if k != key}
            first = branches[0] if isinstance(branches[0], dict) else {}
            return _instance({**rest, **first}, root, depth + 1)
    branches = schema.get("allOf")
    if isinstance(branches, list) and branches:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for branch in branches:
            if isinstance(branch, dict):
                merged = _merge(merged, _resolve(branch["$ref"], root) if "$ref" in branch else branch)
        return _instance(merged, root, depth + 1)
    kind = _type_of(schema)
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        return _array(schema, root, depth)
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return int(_number(schema, integer=True))
    if kind == "number":
        return _number(schema, integer=False)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {}


def _type_of(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        named = [k for k in kind if k != "null"]
        return str(named[0]) if named else ("null" if kind else None)
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minLength", "maxLength", "pattern", "format")):
        return "string"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return "number"
    return None


def _resolve(ref: str, root: Any) -> Any:
    if not ref.startswith("#"):
        return {}
    node = root
    for token in ref[1:].split("/")[1:] if ref != "#" else []:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isascii() and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return {}
    return node


def _merge(into: dict[str, Any], branch: dict[str, Any]) -> dict[str, Any]:
    merged = {**into, **{k: v for k, v in branch.items() if k not in ("properties", "required")}}
    properties = {**(into.get("properties") or {}), **(branch.get("properties") or {})}
    required = [*(into.get("required") or []), *(branch.get("required") or [])]
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = list(dict.fromkeys(required))
    return merged


def _object(schema: dict[str, Any], root: Any, depth: int) -> dict[str, Any]:
    found = schema.get("properties")
    properties: dict[str, Any] = found if isinstance(found, dict) else {}
    extra = schema.get("additionalProperties")
    out: dict[str, Any] = {}
    for name in schema.get("required") or []:
        if not isinstance(name, str):
            continue
        sub = properties.get(name, extra if isinstance(extra, dict) else {})
        out[name] = _instance(sub, root, depth + 1)
    minimum = schema.get("minProperties")
    for name, sub in properties.items():
        if not isinstance(minimum, int) or len(out) >= minimum:
            break
        out.setdefault(name, _instance(sub, root, depth + 1))
    return out


def _array(schema: dict[str, Any], root: Any, depth: int) -> list[Any]:
    found, items, at_least = schema.get("prefixItems"), schema.get("items"), schema.get("minItems")
    prefix: list[Any] = found if isinstance(found, list) else []
    minimum = at_least if isinstance(at_least, int) else 0
    out = [_instance(sub, root, depth + 1) for sub in prefix]
    while len(out) < minimum:
        out.append(_instance(items if isinstance(items, dict) else {}, root, depth + 1))
    return out


def _string(schema: dict[str, Any]) -> str:
    text = _FORMATS.get(str(schema.get("format")), _TEXT)
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            compiled = re.compile(pattern)
        except re.error:
            compiled = None
        if compiled is not None and not compiled.search(text):
            text = next((c for c in _PATTERN_CANDIDATES if compiled.search(c)), text)
    low_value, high_value = schema.get("minLength"), schema.get("maxLength")
    low = low_value if isinstance(low_value, int) else 0
    high = high_value if isinstance(high_value, int) else None
    if len(text) < low:
        text = (text * (low // max(len(text), 1) + 1))[:low] if text else "x" * low
    if high is not None and len(text) > high:
        text = text[:high]
    return text


def _number(schema: dict[str, Any], *, integer: bool) -> float | int:
    value: float = 0
    low, high = schema.get("minimum"), schema.get("maximum")
    above, below = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    step = 1 if integer else 0.5
    if isinstance(low, int | float) and not isinstance(low, bool):
        value = low
    if isinstance(above, int | float) and not isinstance(above, bool) and value <= above:
        value = above + step
    if isinstance(high, int | float) and not isinstance(high, bool) and value > high:
        value = high
    if isinstance(below, int | float) and not isinstance(below, bool) and value >= below:
        value = below - step
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int | float) and not isinstance(multiple, bool) and multiple > 0:
        value = math.ceil(value / multiple) * multiple
    if integer:
        return math.ceil(value)
    return int(value) if float(value).is_integer() else value
