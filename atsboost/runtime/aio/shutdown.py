"""Graceful shutdown of an AsyncEngine: the sync sequence, waiting on the event loop.

The sequence, its logs and the report are ``runtime.shutdown.shutdown_steps``; this
module only carries each step out on the event loop. The steps: stop the monitor;
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

from atsboost.runtime.aio.engine import AsyncEngine
from atsboost.runtime.aio.monitor import AsyncHealthMonitor
from atsboost.runtime.aio.pool import AsyncIdleTimeoutPool
from atsboost.runtime.shutdown import (
    CANCEL_GRACE,
    Abandoned,
    Cancel,
    Close,
    ShutdownReport,
    Step,
    Wait,
    end_on_server,
    in_use,
    shutdown_steps,
)
from atsboost.runtime.sockets import shut_socket

logger = logging.getLogger("atsboost.runtime.shutdown")


async def shutdown_async_engine(
    engine: AsyncEngine, *, timeout: float, monitor: AsyncHealthMonitor | None = None
) -> ShutdownReport:
    """Shut one AsyncEngine down gracefully: ``shutdown_steps``, each carried out on the event loop."""
    steps = shutdown_steps(
        engine.sync_engine.pool, timeout=timeout, started=time.monotonic(), monitored=monitor is not None
    )
    sent: Any = None
    while True:
        try:
            step = steps.send(sent)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        sent = await _carry_out(step, engine, monitor)


async def _carry_out(step: Step, engine: AsyncEngine, monitor: AsyncHealthMonitor | None) -> Any:
    if isinstance(step, Wait):  # no leaks to skip: at exit no event loop runs to await a shutdown
        return await _wait_returned(engine.sync_engine.pool, step.deadline)
    if isinstance(step, Cancel):
        return await _cancel(list(step.entries))
    if isinstance(step, Close):
        return await _close_abandoned(list(step.entries))
    if step.monitor and monitor is not None:
        await monitor.stop()
    elif not step.monitor:
        pool = engine.sync_engine.pool
        await engine.dispose()
        if isinstance(pool, AsyncIdleTimeoutPool):  # its maintenance task has ended when this returns
            await pool.maintenance_stopped()
    return None


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


async def _close_abandoned(entries: list[Any]) -> int:
    """Shut the sockets of what did not come back even after a cancel, then end its server sessions.

    As the sync shutdown (``shut_socket``): the holding task closes its connection
    once woken with an error. ``end_on_server`` runs in a worker thread that has ended
    when this returns; return how many sessions it ended.
    """
    abandoned = [found for entry in entries if (found := Abandoned.of(entry.driver_connection)) is not None]
    for entry in entries:
        shut_socket(entry.driver_connection)
    return await asyncio.to_thread(end_on_server, abandoned)
