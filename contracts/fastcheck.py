"""A fast yes/no check of a payload against the subset of JSON Schema our contracts use.

jsonschema's validator is general (every keyword, every draft, error objects, `best_match`) and
costs 50–250 µs per payload; a consumer applies a payload in a few tens of microseconds once its
database work is batched. So each contract schema is compiled once into nested closures that only
answer "valid?", and `EventType.validate` asks jsonschema only when the answer is no (to build the
error message) — or always, for a schema this module does not compile.

The check is exact for what it compiles: it follows jsonschema's Draft 2020-12 rules (a keyword
applies only to instances of its type; `pattern` is `re.search`; `integer` excludes booleans;
`format` is an annotation, as the validator has no format checker). Where it would need more care
than the contracts need (a float as `integer`, non-string `enum` members) it says no and leaves
the decision to jsonschema: it may reject too much, never accept too much. tests/unit/
test_contracts.py compares both on every registered contract and many mutated payloads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

# Keywords that only describe (no effect on validity without a format checker).
_ANNOTATIONS = {"description", "title", "format", "examples", "default", "$comment"}


class Unsupported(Exception):
    """The schema uses a keyword (or form) this module does not compile."""


def _is_integer(x: Any) -> bool:
    return type(x) is int  # bool is a subclass of int, not an integer (a float like 2.0 is jsonschema's call)


def _is_number(x: Any) -> bool:
    return (type(x) is int or type(x) is float) and x == x  # NaN: leave it to jsonschema


_TYPES: dict[str, Check] = {
    "object": lambda x: type(x) is dict,
    "array": lambda x: type(x) is list,
    "string": lambda x: type(x) is str,
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda x: type(x) is bool,
    "null": lambda x: x is None,
}


def compile_schema(schema: Mapping[str, Any]) -> Check:
    """A function telling whether an instance is valid; raises Unsupported for other schemas."""
    if not isinstance(schema, Mapping):
        raise Unsupported(f"schema {schema!r}")
    unknown = set(schema) - _ANNOTATIONS - set(_KEYWORDS) - {"type"}
    if unknown:
        raise Unsupported(", ".join(sorted(unknown)))
    checks: list[Check] = []
    if "type" in schema:
        kind = schema["type"]
        if not isinstance(kind, str) or kind not in _TYPES:
            raise Unsupported(f"type {kind!r}")
        checks.append(_TYPES[kind])
    for keyword in _ORDER:
        if keyword in schema:
            checks.append(_KEYWORDS[keyword](schema[keyword], schema))
    if "additionalProperties" in schema and "properties" not in schema:
        checks.append(_properties({}, schema))
    return _all(checks)


def _all(checks: list[Check]) -> Check:
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda x: first(x) and second(x)
    checks_ = tuple(checks)

    def check(x: Any) -> bool:
        for c in checks_:
            if not c(x):
                return False
        return True

    return check


def _required(names: Any, _schema: Mapping) -> Check:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Unsupported("required")
    required = frozenset(names)
    return lambda x: type(x) is not dict or x.keys() >= required


def _properties(properties: Any, schema: Mapping) -> Check:
    """`properties` with `additionalProperties` (absent or true: anything; false: nothing else;
    a schema: every other value matches it)."""
    if not isinstance(properties, Mapping):
        raise Unsupported("properties")
    checks = {name: compile_schema(sub) for name, sub in properties.items()}
    additional = schema.get("additionalProperties", True)
    if additional is True:
        extra: Check | None = None
    elif additional is False:
        extra = lambda x: False
    else:
        extra = compile_schema(additional)

    def check(x: Any) -> bool:
        if type(x) is not dict:
            return True
        for name, value in x.items():
            c = checks.get(name, extra)
            if c is not None and not c(value):
                return False
        return True

    return check


def _items(items: Any, _schema: Mapping) -> Check:
    if not isinstance(items, Mapping):
        raise Unsupported("items")  # a boolean `items`, or an old-style tuple form
    item = compile_schema(items)
    return lambda x: type(x) is not list or all(item(v) for v in x)


def _min_items(n: Any, _schema: Mapping) -> Check:
    return lambda x: type(x) is not list or len(x) >= n


def _min_length(n: Any, _schema: Mapping) -> Check:
    return lambda x: type(x) is not str or len(x) >= n


def _max_length(n: Any, _schema: Mapping) -> Check:
    return lambda x: type(x) is not str or len(x) <= n


def _pattern(pattern: Any, _schema: Mapping) -> Check:
    search = re.compile(pattern).search
    return lambda x: type(x) is not str or search(x) is not None


def _enum(members: Any, _schema: Mapping) -> Check:
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise Unsupported("enum")  # JSON equality of numbers and booleans: jsonschema's call
    allowed = frozenset(members)
    return lambda x: type(x) is str and x in allowed


def _minimum(bound: Any, _schema: Mapping) -> Check:
    if type(bound) not in (int, float):
        raise Unsupported("minimum")
    return lambda x: not ((type(x) is int or type(x) is float) and x < bound)


def _additional(_value: Any, _schema: Mapping) -> Check:
    return lambda x: True  # compiled with `properties` (see compile_schema)


_KEYWORDS: dict[str, Callable[[Any, Mapping], Check]] = {
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional,
    "items": _items,
    "minItems": _min_items,
    "minLength": _min_length,
    "maxLength": _max_length,
    "pattern": _pattern,
    "enum": _enum,
    "minimum": _minimum,
}
# Cheap keywords first, so an invalid payload is usually refused before the nested ones run.
_ORDER = ("required", "enum", "minLength", "maxLength", "pattern", "minimum", "minItems", "properties", "items")
