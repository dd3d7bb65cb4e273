"""What the health monitor concludes from its checks: the state, when to check next, what to log.

The thread monitor (``runtime.monitor``) and the asyncio one (``runtime.aio.monitor``)
differ only in how they wait and talk to the server; every conclusion is made here,
so the two cannot drift. States:

- ``healthy``: the last check succeeded and pool usage is below 80 %;
- ``degraded``: one check failed, or pool usage is at 80 % or more;
- ``down``: two or more checks in a row failed.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import text

from atsboost.config.settings import Settings
from atsboost.errors import first_line
from atsboost.runtime.pool.internals import pool_usage

logger = logging.getLogger("atsboost.runtime.monitor")

HIGH_POOL_USAGE = 0.8
# Each check runs these, in this order, on a connection of the monitor's own.
PROBE = (text("SET statement_timeout = '5s'"), text("SELECT 1"))
LONG_QUERIES = text(
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


class HealthTracker:
    """The latest state of one database and the decisions that follow each check; thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self.interval = settings.runtime.health_interval
        self.long_query_parameters = {
            "app": settings.application_name,
            "threshold": settings.runtime.long_query_seconds,
        }
        # A check must end well within the interval: connecting is bounded by this many seconds.
        self.connect_timeout = max(1, min(settings.connect_timeout, round(self.interval)))
        self._state = HealthState()
        self._lock = threading.Lock()
        self._high_usage_checks = 0
        self._reported_queries: set[tuple[int, str]] = set()

    def state(self) -> HealthState:
        """Return a copy of the latest state."""
        with self._lock:
            return HealthState(**asdict(self._state))

    def next_delay(self) -> float:
        """Seconds until the next check: the interval, or after a failure 0.5 s doubling up to it."""
        failures = self._state.consecutive_failures
        return self.interval if failures == 0 else min(self.interval, 0.5 * 2 ** (failures - 1))

    def succeeded(self, latency_ms: float, pool: Any) -> HealthState:
        """Record a successful check of ``latency_ms`` while the application's ``pool`` is as it is."""
        now = dt.datetime.now(dt.UTC).isoformat()
        checked_out, capacity = pool_usage(pool)
        usage = checked_out / capacity if capacity else 0.0
        with self._lock:
            previous = self._state.consecutive_failures
            self._state = state = HealthState(
                status="degraded" if usage >= HIGH_POOL_USAGE else "healthy",
                checked_at=now,
                last_success=now,
                latency_ms=round(latency_ms, 1),
                pool_checked_out=checked_out,
                pool_capacity=capacity,
            )
        if previous:
            logger.warning(
                "the database is reachable again after %d failed check(s)",
                previous,
                extra={"event": "health_recovered", "consecutive_failures": previous},
            )
        self._watch_usage(usage, checked_out, capacity)
        return state

    def failed(self, exc: BaseException, pool: Any) -> tuple[HealthState, bool]:
        """Record a failed check; also say whether to drop the pool's connections (the first failure).

        After a first failure the pooled connections are most likely dead too: dropping
        them makes recovery reconnect instead of handing out broken connections.
        """
        reason = first_line(exc)
        checked_out, capacity = pool_usage(pool)
        with self._lock:
            failures = self._state.consecutive_failures + 1
            self._state = state = HealthState(
                status="down" if failures >= 2 else "degraded",
                checked_at=dt.datetime.now(dt.UTC).isoformat(),
                last_success=self._state.last_success,
                consecutive_failures=failures,
                last_error=reason,
                pool_checked_out=checked_out,
                pool_capacity=capacity,
            )
        if failures <= 2:
            logger.warning(
                "database health check failed (%d in a row): %s",
                failures,
                reason,
                extra={"event": "health_check_failed", "consecutive_failures": failures},
            )
        return state, failures == 1

    def long_queries(self, rows: Iterable[Any]) -> None:
        """Warn, once each, about the rows of ``LONG_QUERIES``: this application's slow queries."""
        for row in rows:
            key = (row.pid, row.query)
            if key not in self._reported_queries:
                self._reported_queries.add(key)
                logger.warning("query running for %s s (pid %s): %s", row.seconds, row.pid, row.query)

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
