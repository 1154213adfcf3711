"""Percentiles and latency summaries (no numpy needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0-100) by linear interpolation between closest ranks; None if empty.
    Infinite values (e.g. orders never confirmed) sort last and make high percentiles infinite."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    if low == high or ordered[high] == math.inf:
        return ordered[high] if rank > low else ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(value: float | None) -> float | None:
    """Round for the report; infinity (not reached in time) becomes None in JSON."""
    if value is None or math.isinf(value):
        return None
    return round(value, 1)


def summary_ms(values_ms: Sequence[float], points: Sequence[float] = (50, 95, 99)) -> dict[str, float | None]:
    out: dict[str, float | None] = {f"p{p:g}_ms": ms(percentile(values_ms, p)) for p in points}
    finite = [v for v in values_ms if not math.isinf(v)]
    out["max_ms"] = ms(max(finite)) if finite else None
    out["mean_ms"] = ms(sum(finite) / len(finite)) if finite else None
    return out
