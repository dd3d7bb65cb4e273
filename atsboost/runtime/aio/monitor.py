"""The health monitor for asyncio applications: a task of the event loop instead of a thread.

It checks the database on a connection of its own, as the thread monitor does, and
draws the same conclusions from the same ``HealthTracker``: the states, the faster
checks after a failure, dropping the pool's connections on the first failure, the
pool-usage and long-query warnings. Dropping the pool is ``await engine.dispose()``
on the application's loop, where its connections live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import sqlalchemy.exc

from atsboost.config.settings import Settings
from atsboost.runtime.aio.engine import AsyncEngine, async_side_engine
from atsboost.runtime.health_tracker import LONG_QUERIES, PROBE, HealthState, HealthTracker
from atsboost.runtime.pool.metrics import watch

logger = logging.getLogger("atsboost.runtime.monitor")


class AsyncHealthMonitor:
    """Watch one AsyncEngine's database from a task; ``state()`` is always cheap (no query)."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.tracker = HealthTracker(settings)
        self._probe = async_side_engine(
            settings, engine.url, "health", connect_timeout=self.tracker.connect_timeout
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start checking in a task of the running loop (idempotent)."""
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="atsboost-health-monitor")
        watch(self.engine.sync_engine.pool, self.tracker)
        logger.info("health monitor started: a check every %gs", self.tracker.interval)

    async def stop(self) -> None:
        """Cancel the task, wait for it to end, and close the monitor's own connections."""
        watch(self.engine.sync_engine.pool, self.tracker, running=False)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._probe.dispose()

    def state(self) -> HealthState:
        """Return a copy of the latest state."""
        return self.tracker.state()

    async def check(self) -> HealthState:
        """Run one check now, update the state and return it."""
        started = time.perf_counter()
        try:
            async with self._probe.connect() as conn:
                for statement in PROBE:
                    await conn.execute(statement)
                latency = (time.perf_counter() - started) * 1000
                rows = await conn.execute(LONG_QUERIES, self.tracker.long_query_parameters)
                self.tracker.long_queries(rows)
        except sqlalchemy.exc.DBAPIError as exc:
            state, drop_pool = self.tracker.failed(exc, self.engine.sync_engine.pool)
            if drop_pool:
                await self.engine.dispose()
            return state
        return self.tracker.succeeded(latency, self.engine.sync_engine.pool)

    async def _run(self) -> None:
        delay = 0.0 if self.tracker.state().status == "unknown" else self.tracker.next_delay()
        while True:
            await asyncio.sleep(delay)
            try:
                await self.check()
            except Exception:  # the monitor must outlive any surprise, and say what it was
                logger.exception("health check raised an unexpected error")
            delay = self.tracker.next_delay()
