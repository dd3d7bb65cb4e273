"""A background health monitor with automatic recovery, for readiness endpoints and logs.

Every ``DATABASE_HEALTH_INTERVAL`` seconds a daemon thread checks connectivity on a
connection of its own (never one of the application's pool, which it may not hold
between checks and must not wait for when exhausted). What it concludes (the
states, the backoff, the warnings) is ``runtime.health_tracker``'s, shared with the
asyncio monitor.

On a failure the application's pool is disposed (its connections are likely dead)
and checks come faster, with backoff, until one succeeds: recovery is automatic.
It also warns when pool usage stays high, and when a query of this application
has run longer than ``DATABASE_LONG_QUERY_SECONDS``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine

from atsboost.config.settings import Settings
from atsboost.runtime.engine import engine_url, side_engine
from atsboost.runtime.health_tracker import LONG_QUERIES, PROBE, HealthState, HealthTracker
from atsboost.runtime.pool.metrics import watch
from atsboost.runtime.sockets import shut_socket

__all__ = ["HealthMonitor", "HealthState"]

logger = logging.getLogger(__name__)


class HealthMonitor:
    """Watch one engine's database from a daemon thread; ``state()`` is always cheap."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.tracker = HealthTracker(settings)
        self._probe = side_engine(
            settings, engine_url(engine), "health", connect_timeout=self.tracker.connect_timeout
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._checking: Any = None  # the psycopg connection of the check under way
        for name in ("first_connect", "connect"):  # before the dialect's own first queries on it
            event.listen(self._probe, name, self._connected, insert=True)

    def start(self) -> None:
        """Start checking in the background (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="atsboost-health-monitor", daemon=True)
        self._thread.start()
        watch(self.engine.pool, self.tracker)
        logger.info("health monitor started: a check every %gs", self.tracker.interval)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (waiting ``timeout`` at most) and close the monitor's own connections.

        A check under way has its socket shut, so that one stuck on a dead link ends now.
        """
        self._stop.set()
        watch(self.engine.pool, self.tracker, running=False)
        shut_socket(self._checking)  # a check stuck on a dead link ends now, not at the stall timeout
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._probe.dispose()

    def _connected(self, dbapi_connection: Any, record: Any) -> None:
        self._checking = dbapi_connection

    def state(self) -> HealthState:
        """Return a copy of the latest state."""
        return self.tracker.state()

    def check(self) -> HealthState:
        """Run one check now, update the state and return it."""
        started = time.perf_counter()
        try:
            with self._probe.connect() as conn:
                for statement in PROBE:
                    conn.execute(statement)
                latency = (time.perf_counter() - started) * 1000
                self.tracker.long_queries(conn.execute(LONG_QUERIES, self.tracker.long_query_parameters))
        except sqlalchemy.exc.DBAPIError as exc:
            if self._stop.is_set():  # cut short by stop(): no verdict on the database
                return self.tracker.state()
            state, drop_pool = self.tracker.failed(exc, self.engine.pool)
            if drop_pool:
                self.engine.dispose()
            return state
        finally:
            self._checking = None
        return self.tracker.succeeded(latency, self.engine.pool)

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            try:
                self.check()
            except Exception:  # the monitor must outlive any surprise, and say what it was
                logger.exception("health check raised an unexpected error")
            delay = self.tracker.next_delay()
