"""Graceful shutdown of an AsyncEngine: the sync sequence, waiting on the event loop.

The steps, their logs and the report are ``runtime.shutdown``'s: stop the monitor;
stop handing out connections; wait for checked-out connections to come back until
the deadline; cancel the queries still running after it, and give them
``CANCEL_GRACE`` to return; close what did not come back, then every connection.
Here the waits are ``asyncio.sleep`` (the tasks that hold connections run on the
same loop and must be able to finish) and the cancels are psycopg's async
``cancel_safe``, all at once and each bounded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from atsboost.runtime.async_engine import AsyncEngine
from atsboost.runtime.async_monitor import AsyncHealthMonitor
from atsboost.runtime.pool import IdleTimeoutQueuePool
from atsboost.runtime.shutdown import (
    CANCEL_GRACE,
    ShutdownReport,
    finished,
    in_use,
    log_abandoned,
    log_cancelled,
    log_waiting,
    running,
)

logger = logging.getLogger("atsboost.runtime.shutdown")


async def shutdown_async_engine(
    engine: AsyncEngine, *, timeout: float, monitor: AsyncHealthMonitor | None = None
) -> ShutdownReport:
    """Shut one AsyncEngine down gracefully; see the module docstring for the sequence."""
    started = time.monotonic()
    if monitor is not None:
        await monitor.stop()
        logger.info("shutdown: health monitor stopped")
    pool = engine.sync_engine.pool
    in_flight = in_use(pool)
    if isinstance(pool, IdleTimeoutQueuePool):
        pool.drain()
    log_waiting(timeout, len(in_flight))
    remaining = await _wait_returned(pool, started + timeout)
    cancelled = await _cancel([entry for entry in remaining if running(entry)])
    if cancelled:
        log_cancelled(cancelled, timeout)
        remaining = await _wait_returned(pool, time.monotonic() + CANCEL_GRACE)
    if remaining:
        log_abandoned(len(remaining))
        await _close_abandoned(remaining)
    await engine.dispose()
    return finished(started, len(in_flight), cancelled, len(remaining))


async def _wait_returned(pool: Any, deadline: float) -> list[Any]:
    """Wait until every checked-out connection is back, or the deadline; return those still out."""
    remaining = in_use(pool)
    while remaining and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        remaining = in_use(pool)
    return remaining


async def _cancel(entries: list[Any]) -> int:
    """Cancel the running queries all at once, each bounded: a dead link must not stall shutdown."""

    async def cancel(connection: Any) -> bool:
        try:
            await asyncio.wait_for(connection.cancel_safe(timeout=CANCEL_GRACE), CANCEL_GRACE + 0.5)
        except Exception as exc:  # a dead link cannot carry a cancel; closing the socket ends the query
            logger.debug("could not cancel a query: %s", exc)
            return False
        return True

    connections = [entry.driver_connection for entry in entries if entry.driver_connection is not None]
    return sum(await asyncio.gather(*(cancel(connection) for connection in connections)))


async def _close_abandoned(entries: list[Any]) -> None:
    """Close what did not come back even after a cancel: its socket, so the holder gets an error."""
    for entry in entries:
        connection = entry.driver_connection
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), CANCEL_GRACE)
            except Exception as exc:  # closing a dead link may complain; it is closed all the same
                logger.debug("closing an abandoned connection: %s", exc)
