"""The counters atsboost keeps while it runs: per pool (with its transactions) and for migrations.

They are plain attributes behind one lock each, cheap enough to leave on: a
checkout adds one histogram observation, a transaction one increment. A pool's
counters outlive ``Engine.dispose()`` (the new pool takes them over), so they only
ever grow, as Prometheus counters must. ``snapshot()`` turns them into a plain dict,
as psycopg_pool's ``get_stats()`` does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from atsboost.metrics.histogram import Histogram
from atsboost.metrics.listeners import Listeners

# The reasons a pooled connection is closed, as counted (and labelled) here.
CLOSE_REASONS = ("idle_timeout", "max_lifetime")
TRANSACTION_OUTCOMES = ("committed", "failed", "outcome_unknown")


class MonitorView(Protocol):
    """What the metrics read of a health monitor: its latest state."""

    def state(self) -> Any:
        """Return the latest HealthState."""
        ...


class PoolStats:
    """One pool's counters, and the transactions run on it; the gauges are read from the pool."""

    enabled = True

    def __init__(self, name: str, listeners: Listeners | None = None) -> None:
        self.name = name
        self.wait = Histogram()
        self._listeners = listeners or Listeners()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(
            ("timeouts", "opened", "invalidated", "validations", "leaks", "fenced"), 0
        )
        self._closed = dict.fromkeys(CLOSE_REASONS, 0)
        self._transactions = dict.fromkeys(TRANSACTION_OUTCOMES, 0)
        self._retries: dict[str, int] = {}
        self._gauges: Callable[[], dict[str, int]] = dict
        self._monitor: MonitorView | None = None

    def count(self, what: str, n: int = 1) -> None:
        """Add ``n`` to a counter: timeouts, opened, invalidated, validations, leaks, fenced."""
        with self._lock:
            self._counts[what] += n
        for listener in self._listeners.all:
            listener.counted(self.name, what, None, n)

    def closed(self, reason: str, n: int = 1) -> None:
        """Count connections the pool closed for ``reason`` (``CLOSE_REASONS``)."""
        with self._lock:
            self._closed[reason] += n
        for listener in self._listeners.all:
            listener.counted(self.name, "closed", reason, n)

    def transaction(self, outcome: str) -> None:
        """Count a finished ``run_transaction`` by ``outcome`` (``TRANSACTION_OUTCOMES``)."""
        with self._lock:
            self._transactions[outcome] += 1
        for listener in self._listeners.all:
            listener.counted(self.name, "transactions", outcome, 1)

    def retry(self, sqlstate: str | None) -> None:
        """Count one retried attempt, by the SQLSTATE that failed it (``none`` without one)."""
        key = sqlstate or "none"
        with self._lock:
            self._retries[key] = self._retries.get(key, 0) + 1
        for listener in self._listeners.all:
            listener.counted(self.name, "retries", key, 1)

    def waited(self, seconds: float) -> None:
        """Record how long a checkout waited for a connection (0 when one was free)."""
        self.wait.observe(seconds)
        for listener in self._listeners.all:
            listener.observed(self.name, "wait_seconds", seconds)

    def read_gauges(self, gauges: Callable[[], dict[str, int]]) -> None:
        """Read the pool's size, checked-out, idle and waiting connections from ``gauges`` (the live pool)."""
        self._gauges = gauges

    def watch(self, monitor: MonitorView) -> None:
        """Report this monitor's state with the pool's figures."""
        self._monitor = monitor

    def unwatch(self, monitor: MonitorView) -> None:
        """Stop reporting this monitor's state (it stopped); another monitor's stays."""
        if self._monitor is monitor:
            self._monitor = None

    def snapshot(self) -> dict[str, Any]:
        """Return every figure of this pool as a plain, JSON-ready dict."""
        with self._lock:
            counts, closed = dict(self._counts), dict(self._closed)
            transactions, retries = dict(self._transactions), dict(self._retries)
        monitor = None
        if self._monitor is not None:
            state = self._monitor.state()
            monitor = {"status": state.status, "consecutive_failures": state.consecutive_failures}
        wait = self.wait.snapshot()
        return {
            **self._gauges(),
            "checkouts": wait["count"],
            **counts,
            "closed": closed,
            "wait_seconds": wait,
            "transactions": {**transactions, "retries": retries},
            "monitor": monitor,
        }


class MigrationStats:
    """Migrations applied by this process (``startup()``, ``atsboost-db migrate``), and the lock waits."""

    def __init__(self, listeners: Listeners | None = None) -> None:
        self.duration = Histogram()
        self.lock_wait = Histogram()
        self._lock = threading.Lock()
        self._applied = 0
        self._listeners = listeners or Listeners()

    def applied(self, seconds: float) -> None:
        """Count one revision applied in ``seconds``."""
        self.duration.observe(seconds)
        with self._lock:
            self._applied += 1
        for listener in self._listeners.all:
            listener.counted(None, "migrations_applied", None, 1)
            listener.observed(None, "migration_duration_seconds", seconds)

    def lock_waited(self, seconds: float) -> None:
        """Record how long a migrator waited for the migration lock."""
        self.lock_wait.observe(seconds)
        for listener in self._listeners.all:
            listener.observed(None, "migration_lock_wait_seconds", seconds)

    def snapshot(self) -> dict[str, Any]:
        """Return the figures as a plain dict."""
        with self._lock:
            applied = self._applied
        return {
            "applied": applied,
            "duration_seconds": self.duration.snapshot(),
            "lock_wait_seconds": self.lock_wait.snapshot(),
        }


class DisabledStats(PoolStats):
    """The counters of a pool built with ``DATABASE_METRICS=false``: every call does nothing."""

    enabled = False

    def __init__(self) -> None:
        super().__init__("disabled")

    def count(self, what: str, n: int = 1) -> None:
        """Count nothing."""

    def closed(self, reason: str, n: int = 1) -> None:
        """Count nothing."""

    def transaction(self, outcome: str) -> None:
        """Count nothing."""

    def retry(self, sqlstate: str | None) -> None:
        """Count nothing."""

    def waited(self, seconds: float) -> None:
        """Keep nothing."""


DISABLED = DisabledStats()
"""The one set of counters every pool without metrics shares; it is in no registry."""
