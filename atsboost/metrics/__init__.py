"""atsboost's runtime figures: pools, waits, transactions, retries, the monitor and migrations.

``snapshot()`` returns them as a plain dict (as psycopg_pool's ``get_stats()``),
for the sync and the async runtime alike; the exporters read the same figures.
``tracing`` holds the tracer of atsboost's spans, when one is set.
Importing this module loads nothing beyond the standard library.
"""

from __future__ import annotations

from typing import Any

from atsboost.metrics.histogram import Histogram
from atsboost.metrics.registry import Registry
from atsboost.metrics.stats import MigrationStats, PoolStats
from atsboost.metrics.tracing import Tracing

__all__ = [
    "Histogram",
    "MigrationStats",
    "PoolStats",
    "Registry",
    "Tracing",
    "registry",
    "snapshot",
    "tracing",
]

registry = Registry()
"""The process's registry: every pool atsboost builds enrols here."""

tracing = Tracing()
"""Where the process's spans go: nowhere until ``atsboost.metrics.otel.instrument()``."""


def snapshot() -> dict[str, Any]:
    """Return every figure of the process's pools and migrations as a plain, JSON-ready dict."""
    return registry.snapshot()
