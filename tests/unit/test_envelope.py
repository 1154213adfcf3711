import json
import uuid
from datetime import UTC, datetime

import pytest

from orderflow.messaging.envelope import Envelope, MalformedEvent


def test_binary_mode_round_trip():
    envelope = Envelope(
        id=str(uuid.uuid4()),
        type="orderflow.orders.OrderPlaced.v1",
        source="/orderflow/orders",
        subject="o-1",
        time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        data={"a": 1},
        traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01",
        correlation_id="c",
        causation_id="e",
    )
    back = Envelope.from_kafka(envelope.headers(), envelope.value())
    assert back == envelope


ATTRIBUTES = [("ce_id", b"1"), ("ce_type", b"t"), ("ce_source", b"s"), ("ce_time", b"2026-01-01T00:00:00+00:00")]


@pytest.mark.parametrize(
    ("headers", "value", "message"),
    [
        ([], b"{}", "missing CloudEvents header"),
        ([("ce_id", b"1"), ("ce_type", b"t"), ("ce_source", b"s"), ("ce_time", b"yesterday")], b"{}", "ISO 8601"),
        (ATTRIBUTES, b"not json", "not JSON"),
        (ATTRIBUTES, b"[1]", "JSON object"),
        ([("ce_id", b"\xff"), ("ce_type", b"t")], b"{}", "UTF-8"),
        (ATTRIBUTES, b'{"amount": NaN}', "not JSON"),  # RFC 8259, not Python's json module, is the rule
        (ATTRIBUTES, b'{"sku": "\xff"}', "not JSON"),
        (ATTRIBUTES, None, "not JSON"),
    ],
)
def test_malformed_records_are_refused_with_a_reason(headers, value, message):
    with pytest.raises(MalformedEvent, match=message):
        Envelope.from_kafka(headers, value)


def test_body_keeps_non_ascii_text_and_nesting():
    data = {"name": "Crème brûlée 🍮", "lines": [{"sku": "A-1", "quantity": 2}], "note": None, "ok": True}
    envelope = Envelope(id="1", type="t", source="s", subject="x", time=datetime(2026, 1, 2, tzinfo=UTC), data=data)
    assert envelope.value() == json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    assert Envelope.from_kafka(envelope.headers(), envelope.value()).data == data
