"""W3C trace context and correlation/causation ids, carried from requests and consumed events into
the events they cause (so one order's saga can be followed across every context)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from orderflow import ids

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def _random_hex(bits: int) -> str:
    """A random, non-zero W3C trace or span id of `bits` bits, as lowercase hex.

    Ids only need to be unique, not secret (OpenTelemetry's default generator draws them the same
    way, from a Mersenne Twister): see orderflow.ids for why not `secrets`.
    """
    value = ids.random_bits(bits)
    while not value:  # all zeros is the invalid id
        value = ids.random_bits(bits)
    return f"{value:0{bits // 4}x}"


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str
    correlation_id: str
    causation_id: str | None = None

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-01"

    def child(self, *, causation_id: str | None = None) -> TraceContext:
        """A new span in the same trace, e.g. for an event caused by this one."""
        return TraceContext(self.trace_id, _random_hex(64), self.correlation_id, causation_id or self.causation_id)


def new_root(*, correlation_id: str | None = None) -> TraceContext:
    return TraceContext(_random_hex(128), _random_hex(64), correlation_id or str(ids.uuid4()))


def from_headers(traceparent: str | None, correlation_id: str | None, causation_id: str | None = None) -> TraceContext:
    """Continue an incoming trace; a malformed or missing traceparent starts a new one."""
    # Called for every consumed event: draw only the random ids that are actually missing.
    match = _TRACEPARENT.match(traceparent or "")
    correlation_id = correlation_id or str(ids.uuid4())
    trace_id = match.group(1) if match else _random_hex(128)
    return TraceContext(trace_id, _random_hex(64), correlation_id, causation_id)


_current: ContextVar[TraceContext | None] = ContextVar("orderflow_trace", default=None)


def current() -> TraceContext:
    ctx = _current.get()
    return ctx if ctx is not None else new_root()


@contextmanager
def use(ctx: TraceContext) -> Iterator[TraceContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


class TraceMiddleware:
    """Adopt `traceparent` and `X-Correlation-ID` from the request; echo the correlation id."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ctx = from_headers(request.headers.get("traceparent"), request.headers.get("X-Correlation-ID"))
        with use(ctx):
            response = self.get_response(request)
        response["X-Correlation-ID"] = ctx.correlation_id
        return response
