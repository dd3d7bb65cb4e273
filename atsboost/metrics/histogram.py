"""A cumulative histogram with fixed bounds, as Prometheus and OpenTelemetry export them."""

from __future__ import annotations

import bisect
import threading
from typing import Any

# Seconds: from a checkout served at once to a migration lock held for minutes.
SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Histogram:
    """Counts of observations per bucket, their count and their sum; thread-safe, O(log buckets)."""

    __slots__ = ("_counts", "_lock", "_sum", "bounds")

    def __init__(self, bounds: tuple[float, ...] = SECONDS) -> None:
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Record one observation."""
        index = bisect.bisect_left(self.bounds, value)
        with self._lock:
            self._counts[index] += 1
            self._sum += value

    def snapshot(self) -> dict[str, Any]:
        """Return ``count``, ``sum`` and cumulative ``buckets`` (upper bound to count, ``inf`` last)."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative: dict[str, int] = {}
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            running += count
            cumulative[_label(bound)] = running
        return {"count": running, "sum": round(total, 6), "buckets": cumulative}


def _label(bound: float) -> str:
    """Write a bucket's upper bound as Prometheus does in ``le``: ``0.005``, ``1.0``, ``+Inf``."""
    return "+Inf" if bound == float("inf") else repr(float(bound))
