"""What an integration event type is: a name, a version, the stream it belongs to, a JSON Schema."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from contracts import fastcheck

TYPE_PREFIX = "orderflow"


class ContractError(ValueError):
    """A payload does not satisfy its event type's schema."""


class UnknownEventType(LookupError):
    """No contract is registered under this CloudEvents type."""


@dataclass(frozen=True)
class EventType:
    """One version of one integration event.

    `context` is the producing bounded context and `aggregate` the stream (topic) it belongs to;
    `schema` is the JSON Schema of `data`.
    """

    context: str
    aggregate: str
    name: str
    version: int
    # Identity is (context, aggregate, name, version): usable as a dict key.
    schema: Mapping[str, Any] = field(compare=False)
    description: str = field(default="", compare=False)
    _validator: Draft202012Validator = field(init=False, repr=False, compare=False)
    # The compiled yes/no check (see contracts/fastcheck.py); None: jsonschema decides alone.
    _check: Callable[[Any], bool] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        Draft202012Validator.check_schema(self.schema)
        object.__setattr__(self, "_validator", Draft202012Validator(self.schema))
        try:
            check = fastcheck.compile_schema(self.schema)
        except fastcheck.Unsupported:
            check = None
        object.__setattr__(self, "_check", check)

    # Cached (on the instance, beside the frozen fields): consumers and the outbox ask for these
    # several times per event.
    @cached_property
    def type(self) -> str:
        """The CloudEvents `type`, e.g. `orderflow.orders.OrderPlaced.v1`."""
        return f"{TYPE_PREFIX}.{self.context}.{self.name}.v{self.version}"

    @cached_property
    def stream(self) -> str:
        """Topic name without namespace: `<context>.<aggregate>`."""
        return f"{self.context}.{self.aggregate}"

    def validate(self, data: Any) -> None:
        if self._check is not None and self._check(data):
            return  # the common case, without jsonschema's cost; a "no" is explained by jsonschema
        error = best_match(self._validator.iter_errors(data))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise ContractError(f"{self.type}: {where}: {error.message}")

    def json_schema(self) -> dict[str, Any]:
        """The exported, self-describing schema document."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:orderflow:event:{self.type}",
            "title": f"{self.name} v{self.version}",
            "description": self.description,
            "x-orderflow": {"context": self.context, "aggregate": self.aggregate, "type": self.type},
            **self.schema,
        }


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# Reusable schema fragments.
MONEY = {
    "type": "object",
    "required": ["amount", "currency"],
    "additionalProperties": False,
    "properties": {
        "amount": {"type": "string", "pattern": r"^-?\d+(\.\d{1,2})?$"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    },
}
UUID = {"type": "string", "format": "uuid", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
SKU = {"type": "string", "minLength": 1, "maxLength": 64}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object schema with these required properties (and optional ones), nothing else."""
    return {
        "type": "object",
        "required": list(required),
        "additionalProperties": False,
        "properties": {**required, **(optional or {})},
    }
