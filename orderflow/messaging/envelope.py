"""CloudEvents 1.0 in Kafka binary content mode: attributes as `ce_*` headers, JSON data as value."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

SPECVERSION = "1.0"
# The headers Envelope has a field for; any others are kept in `extra`.
_KNOWN_HEADERS = frozenset(
    {
        "ce_specversion",
        "ce_id",
        "ce_type",
        "ce_source",
        "ce_subject",
        "ce_time",
        "content-type",
        "traceparent",
        "correlation_id",
        "causation_id",
    }
)


class MalformedEvent(ValueError):
    """A Kafka record is not a valid OrderFlow CloudEvent (missing headers, bad JSON...)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: dict[str, Any]
    traceparent: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("ce_specversion", SPECVERSION),
            ("ce_id", self.id),
            ("ce_type", self.type),
            ("ce_source", self.source),
            ("ce_subject", self.subject),
            ("ce_time", self.time.isoformat()),
            ("content-type", "application/json"),
        ]
        for name in ("traceparent", "correlation_id", "causation_id"):
            value = getattr(self, name)
            if value:
                headers.append((name, value))
        return [(k, v.encode()) for k, v in headers]

    def value(self) -> bytes:
        return orjson.dumps(self.data)

    @classmethod
    def from_kafka(cls, headers: list[tuple[str, bytes | None]] | None, value: bytes | None) -> Envelope:
        attrs: dict[str, str] = {}
        for key, raw in headers or ():
            try:
                attrs[key] = raw.decode() if raw is not None else ""
            except UnicodeDecodeError:
                raise MalformedEvent(f"header {key} is not UTF-8") from None
        missing = [h for h in ("ce_id", "ce_type", "ce_source", "ce_time") if not attrs.get(h)]
        if missing:
            raise MalformedEvent(f"missing CloudEvents header(s): {', '.join(missing)}")
        if attrs.get("ce_specversion", SPECVERSION) != SPECVERSION:
            raise MalformedEvent(f"unsupported CloudEvents specversion {attrs['ce_specversion']!r}")
        try:
            time = datetime.fromisoformat(attrs["ce_time"])
        except ValueError:
            raise MalformedEvent(f"ce_time {attrs['ce_time']!r} is not ISO 8601") from None
        try:
            # orjson (decision 45): strict RFC 8259 (NaN, Infinity and invalid UTF-8 are malformed)
            # and a quarter of json.loads's time on an event body.
            data = orjson.loads(value or b"")
        except orjson.JSONDecodeError as exc:
            raise MalformedEvent(f"body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise MalformedEvent("body must be a JSON object")
        return cls(
            id=attrs["ce_id"],
            type=attrs["ce_type"],
            source=attrs["ce_source"],
            subject=attrs.get("ce_subject", ""),
            time=time,
            data=data,
            traceparent=attrs.get("traceparent"),
            correlation_id=attrs.get("correlation_id"),
            causation_id=attrs.get("causation_id"),
            extra={k: v for k, v in attrs.items() if k not in _KNOWN_HEADERS},
        )
