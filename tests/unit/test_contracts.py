import json

import pytest

from contracts import ContractError, UnknownEventType, registry
from contracts.base import EventType, obj
from contracts.export import SCHEMA_DIR, rendered
from contracts.registry import Registry


def test_committed_schemas_equal_the_code():
    on_disk = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.json")}
    assert on_disk == rendered(), "run `python -m contracts.export` and commit contracts/schemas"


def test_every_schema_is_a_json_schema_document():
    for path in SCHEMA_DIR.glob("*.json"):
        document = json.loads(path.read_text())
        assert document["$schema"].endswith("2020-12/schema")
        assert document["x-orderflow"]["type"] + ".json" == path.name


def test_validation_rejects_bad_payloads_with_the_path():
    placed = registry.get("orderflow.orders.OrderPlaced.v1")
    with pytest.raises(ContractError, match="lines"):
        placed.validate({"order_id": "00000000-0000-0000-0000-000000000000", "customer_id": "x"})
    with pytest.raises(UnknownEventType):
        registry.get("orderflow.orders.OrderPlaced.v9")


def test_upcasting_lifts_old_versions_step_by_step():
    reg = Registry()
    v1 = reg.register(EventType("shop", "thing", "Made", 1, obj({"name": {"type": "string"}})))
    v2 = reg.register(
        EventType("shop", "thing", "Made", 2, obj({"name": {"type": "string"}, "size": {"type": "integer"}}))
    )
    v3 = reg.register(
        EventType("shop", "thing", "Made", 3, obj({"title": {"type": "string"}, "size": {"type": "integer"}}))
    )
    reg.register_upcaster(v1, v2, lambda d: {**d, "size": 1})
    reg.register_upcaster(v2, v3, lambda d: {"title": d["name"], "size": d["size"]})
    latest, data = reg.upcast(v1.type, {"name": "cup"})
    assert latest is v3 and data == {"title": "cup", "size": 1}
    with pytest.raises(ContractError):
        reg.upcast(v1.type, {"name": 3})
    with pytest.raises(ValueError, match="one version up"):
        reg.register_upcaster(v1, v3, lambda d: d)
