"""A fast yes/no check of a payload against the subset of JSON Schema our contracts use.

jsonschema's validator is general (every keyword, every draft, error objects, `best_match`) and
costs 50–250 µs per payload; a consumer applies a payload in a few tens of microseconds once its
database work is batched. So each contract schema is compiled once into the source of one Python
function that only answers "valid?" — the checks inlined, nested objects and arrays as nested
code, no call per keyword — and `EventType.validate` asks jsonschema only when the answer is no
(to build the error message) — or always, for a schema this module does not compile.

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
_KEYWORDS = {
    "required",
    "properties",
    "additionalProperties",
    "items",
    "minItems",
    "minLength",
    "maxLength",
    "pattern",
    "enum",
    "minimum",
}
# Python's test that a value is an instance of each JSON type (`{}` is the value). `integer`
# excludes bool, a subclass of int; a float like 2.0 is jsonschema's call. NaN as a number too.
_IS_TYPE = {
    "object": "type({}) is dict",
    "array": "type({}) is list",
    "string": "type({}) is str",
    "integer": "type({}) is int",
    "number": "(type({0}) is int or type({0}) is float) and {0} == {0}",
    "boolean": "type({}) is bool",
    "null": "{} is None",
}
_IS_NUMBER = "(type({0}) is int or type({0}) is float)"


class Unsupported(Exception):
    """The schema uses a keyword (or form) this module does not compile."""


class _Compiler:
    """Writes the body of `check(x)`: statements that `return False` at the first failed rule."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self._names = 0

    def fresh(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}{self._names}"

    def constant(self, value: Any) -> str:
        """An expression for `value` in the source: a literal for a str or an int, else a name."""
        if type(value) in (str, int):
            return repr(value)
        name = self.fresh("_c")
        self.constants[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def fail_if(self, condition: str, depth: int) -> None:
        self.emit(depth, f"if {condition}:")
        self.emit(depth + 1, "return False")

    def block(self, schema: Any, var: str, depth: int) -> None:
        """`schema`'s statements as the body of the block just opened (`pass` if it has none)."""
        start = len(self.lines)
        self.schema(schema, var, depth)
        if len(self.lines) == start:
            self.emit(depth, "pass")

    def schema(self, schema: Any, var: str, depth: int) -> None:
        """Statements checking the value in `var` against `schema`, indented `depth` levels."""
        if not isinstance(schema, Mapping):
            raise Unsupported(f"schema {schema!r}")
        unknown = set(schema) - _ANNOTATIONS - _KEYWORDS - {"type"}
        if unknown:
            raise Unsupported(", ".join(sorted(unknown)))
        known = None  # the JSON type the value is known to have once the `type` check passed
        if "type" in schema:
            known = schema["type"]
            if not isinstance(known, str) or known not in _IS_TYPE:
                raise Unsupported(f"type {known!r}")
            self.fail_if(f"not ({_IS_TYPE[known].format(var)})", depth)

        def when(kind: str, test: str) -> str:
            """`test`, guarded by the value being of `kind` unless the type check already says so."""
            if known == kind or (kind == "number" and known in ("integer", "number")):
                return test
            guard = _IS_NUMBER.format(var) if kind == "number" else _IS_TYPE[kind].format(var)
            return f"{guard} and {test}"

        # Cheap keywords first, so an invalid payload is usually refused before the nested ones run.
        if "required" in schema:
            names = schema["required"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise Unsupported("required")
            self.fail_if(when("object", f"not {var}.keys() >= {self.constant(frozenset(names))}"), depth)
        if "enum" in schema:
            members = schema["enum"]
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise Unsupported("enum")  # JSON equality of numbers and booleans: jsonschema's call
            self.fail_if(f"not (type({var}) is str and {var} in {self.constant(frozenset(members))})", depth)
        if "minLength" in schema:
            self.fail_if(when("string", f"len({var}) < {self.constant(schema['minLength'])}"), depth)
        if "maxLength" in schema:
            self.fail_if(when("string", f"len({var}) > {self.constant(schema['maxLength'])}"), depth)
        if "pattern" in schema:
            search = self.constant(re.compile(schema["pattern"]).search)
            self.fail_if(when("string", f"{search}({var}) is None"), depth)
        if "minimum" in schema:
            bound = schema["minimum"]
            if type(bound) not in (int, float):
                raise Unsupported("minimum")
            self.fail_if(when("number", f"{var} < {self.constant(bound)}"), depth)
        if "minItems" in schema:
            self.fail_if(when("array", f"len({var}) < {self.constant(schema['minItems'])}"), depth)
        if "properties" in schema or "additionalProperties" in schema:
            self.properties(schema, var, depth, known == "object")
        if "items" in schema:
            self.items(schema["items"], var, depth, known == "array")

    def properties(self, schema: Mapping, var: str, depth: int, is_object: bool) -> None:
        """`properties` with `additionalProperties` (absent or true: anything; false: nothing else;
        a schema: every other value matches it)."""
        properties = schema.get("properties", {})
        if not isinstance(properties, Mapping):
            raise Unsupported("properties")
        additional = schema.get("additionalProperties", True)
        if not is_object:
            self.emit(depth, f"if type({var}) is dict:")
            depth += 1
        start = len(self.lines)
        names = self.constant(frozenset(properties))
        if additional is False:
            self.fail_if(f"not {var}.keys() <= {names}", depth)
        elif additional is not True:
            key, value = self.fresh("k"), self.fresh("v")
            self.emit(depth, f"for {key}, {value} in {var}.items():")
            self.emit(depth + 1, f"if {key} not in {names}:")
            self.block(additional, value, depth + 2)
        required = set(schema.get("required", ()))  # a list of names: schema() checked it
        for name, sub in properties.items():
            value, key = self.fresh("v"), self.constant(name)
            if name in required:  # `required` was checked above: the key is there
                self.emit(depth, f"{value} = {var}[{key}]")
                self.schema(sub, value, depth)
            else:
                self.emit(depth, f"if {key} in {var}:")
                self.emit(depth + 1, f"{value} = {var}[{key}]")
                self.schema(sub, value, depth + 1)
        if not is_object and len(self.lines) == start:  # `if type(x) is dict:` with nothing in it
            self.emit(depth, "pass")

    def items(self, items: Any, var: str, depth: int, is_array: bool) -> None:
        if not isinstance(items, Mapping):
            raise Unsupported("items")  # a boolean `items`, or an old-style tuple form
        if not is_array:
            self.emit(depth, f"if type({var}) is list:")
            depth += 1
        item = self.fresh("v")
        self.emit(depth, f"for {item} in {var}:")
        self.block(items, item, depth + 1)


def compile_schema(schema: Mapping[str, Any]) -> Check:
    """A function telling whether an instance is valid; raises Unsupported for other schemas."""
    compiler = _Compiler()
    try:
        compiler.schema(schema, "x", 1)
        source = "\n".join(["def check(x):", *compiler.lines, "    return True"])
        # The source comes from the registered contracts' schemas, never from a payload.
        code = compile(source, "<contracts.fastcheck>", "exec")
    except (RecursionError, SyntaxError) as exc:  # nesting deeper than Python allows (20 loops)
        raise Unsupported(f"nesting: {exc}") from None
    namespace = dict(compiler.constants)
    exec(code, namespace)
    check = namespace["check"]
    check.source = source  # for reading what a schema compiled to
    return check
