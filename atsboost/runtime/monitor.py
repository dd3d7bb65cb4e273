"""A background health monitor with automatic recovery, for readiness endpoints and logs.

Every ``DATABASE_HEALTH_INTERVAL`` seconds a daemon thread checks connectivity on a
connection of its own (never one of the application's pool, which it may not hold
between checks and must not wait for when exhausted). States:

- ``healthy``: the last check succeeded and pool usage is below 80 %;
- ``degraded``: one check failed, or pool usage is at 80 % or more;
- ``down``: two or more checks in a row failed.

On a failure the application's pool is disposed (its connections are likely dead)
and checks come faster, with backoff, until one succeeds: recovery is automatic.
It also warns when pool usage stays high, and when a query of this application
has run longer than ``DATABASE_LONG_QUERY_SECONDS``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import Engine

from atsboost.config.settings import Settings
from atsboost.errors import first_line
from atsboost.runtime.engine import side_engine
from atsboost.runtime.pool_internals import pool_usage

logger = logging.getLogger(__name__)

HIGH_POOL_USAGE = 0.8
_LONG_QUERIES = text(
    "SELECT pid, round(extract(epoch FROM now() - query_start)) AS seconds, left(query, 200) AS query"
    " FROM pg_stat_activity WHERE application_name = :app AND state = 'active'"
    " AND now() - query_start > make_interval(secs => :threshold) AND pid <> pg_backend_pid()"
)


@dataclass
class HealthState:
    """The monitor's view of the database; ``as_dict()`` suits a readiness endpoint."""

    status: str = "unknown"
    checked_at: str | None = None
    last_success: str | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    latency_ms: float | None = None
    pool_checked_out: int = 0
    pool_capacity: int = 0

    @property
    def pool_usage(self) -> float:
        """Checked-out connections as a share of the pool's size plus overflow."""
        return self.pool_checked_out / self.pool_capacity if self.pool_capacity else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the state as a plain, JSON-ready dict."""
        return {**asdict(self), "pool_usage": round(self.pool_usage, 3)}


class HealthMonitor:
    """Watch one engine's database from a daemon thread; ``state()`` is always cheap."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.interval = settings.runtime.health_interval
        timeout = max(1, min(settings.connect_timeout, round(self.interval)))
        self._probe = side_engine(settings, engine.url, "health", connect_timeout=timeout)
        self._state = HealthState()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._high_usage_checks = 0
        self._reported_queries: set[tuple[int, str]] = set()

    def start(self) -> None:
        """Start checking in the background (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="atsboost-health-monitor", daemon=True)
        self._thread.start()
        logger.info("health monitor started: a check every %gs", self.interval)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the monitor's own connections."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._probe.dispose()

    def state(self) -> HealthState:
        """Return a copy of the latest state."""
        with self._lock:
            return HealthState(**asdict(self._state))

    def check(self) -> HealthState:
        """Run one check now, update the state and return it."""
        now = dt.datetime.now(dt.UTC)
        started = time.perf_counter()
        try:
            with self._probe.connect() as conn:
                conn.execute(text("SET statement_timeout = '5s'"))
                conn.execute(text("SELECT 1"))
                latency = (time.perf_counter() - started) * 1000
                self._warn_long_queries(conn)
        except sqlalchemy.exc.DBAPIError as exc:
            return self._failed(now, exc)
        return self._succeeded(now, latency)

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            state = self.check()
            # After a failure, check again soon (0.5 s, doubling) rather than a whole interval later.
            failures = state.consecutive_failures
            delay = self.interval if failures == 0 else min(self.interval, 0.5 * 2 ** (failures - 1))

    def _succeeded(self, now: dt.datetime, latency: float) -> HealthState:
        checked_out, capacity = pool_usage(self.engine.pool)
        with self._lock:
            previous = self._state
            recovered = previous.consecutive_failures > 0
            usage = checked_out / capacity if capacity else 0.0
            self._state = HealthState(
                status="degraded" if usage >= HIGH_POOL_USAGE else "healthy",
                checked_at=now.isoformat(),
                last_success=now.isoformat(),
                latency_ms=round(latency, 1),
                pool_checked_out=checked_out,
                pool_capacity=capacity,
            )
            state = self._state
        if recovered:
            logger.warning(
                "the database is reachable again after %d failed check(s)", previous.consecutive_failures
            )
        self._watch_usage(usage, checked_out, capacity)
        return state

    def _failed(self, now: dt.datetime, exc: sqlalchemy.exc.DBAPIError) -> HealthState:
        reason = first_line(exc)
        checked_out, capacity = pool_usage(self.engine.pool)
        with self._lock:
            failures = self._state.consecutive_failures + 1
            self._state = HealthState(
                status="down" if failures >= 2 else "degraded",
                checked_at=now.isoformat(),
                last_success=self._state.last_success,
                consecutive_failures=failures,
                last_error=reason,
                pool_checked_out=checked_out,
                pool_capacity=capacity,
            )
            state = self._state
        if failures <= 2:
            logger.warning("database health check failed (%d in a row): %s", failures, reason)
        if failures == 1:
            # Pooled connections are most likely dead too: drop them, so that recovery reconnects.
            self.engine.dispose()
        return state

    def _watch_usage(self, usage: float, checked_out: int, capacity: int) -> None:
        self._high_usage_checks = self._high_usage_checks + 1 if usage >= HIGH_POOL_USAGE else 0
        if self._high_usage_checks == 2:
            logger.warning(
                "pool usage has stayed at %d of %d connections (%.0f%%) for two checks: look for slow "
                "queries or leaked connections, or raise DATABASE_POOL_SIZE",
                checked_out,
                capacity,
                usage * 100,
            )

    def _warn_long_queries(self, conn: sqlalchemy.Connection) -> None:
        rows = conn.execute(
            _LONG_QUERIES,
            {"app": self.settings.application_name, "threshold": self.settings.runtime.long_query_seconds},
        ).all()
        for row in rows:
            key = (row.pid, row.query)
            if key not in self._reported_queries:
                self._reported_queries.add(key)
                logger.warning("query running for %s s (pid %s): %s", row.seconds, row.pid, row.query)
