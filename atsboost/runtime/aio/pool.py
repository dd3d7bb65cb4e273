"""The sync pool's protections in SQLAlchemy's asyncio engine: idle timeout, validation, fair hand-off.

``AsyncIdleTimeoutPool`` is ``IdleTimeoutQueuePool`` (the same decisions, the same
code) on ``AsyncAdaptedQueuePool``'s asyncio queue. What differs is only how it
waits: a checkout that finds no free connection awaits a future, so the event loop
keeps serving other tasks; the maintenance (idle timeout, leaks) is a task of the
loop; a leak report names the awaiting coroutines, where the application's code is.
"""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy.pool import AsyncAdaptedQueuePool

from atsboost.runtime import leaks
from atsboost.runtime.pool import waiting as pool_waiting
from atsboost.runtime.pool.queue import REAPER_STOP, IdleTimeoutQueuePool
from atsboost.runtime.pool.waiting import TaskWaiter


class AsyncIdleTimeoutPool(IdleTimeoutQueuePool, AsyncAdaptedQueuePool):
    """IdleTimeoutQueuePool for an AsyncEngine: waits and maintenance run on the event loop."""

    _waiter_class = TaskWaiter
    _capture = staticmethod(leaks.capture_task_stack)
    _maintained_on: asyncio.AbstractEventLoop | None = None
    _maintenance: asyncio.Task[None] | None = None

    def _start_reaper(self) -> None:
        if self._idle_timeout is None and self._leak_threshold is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a connection returned outside the loop (garbage collection)
            return
        if self._maintained_on is not loop:
            self._maintained_on = loop
            self._maintenance = pool_waiting.start_task(self, self._stopped, self.maintenance_interval())

    def stop_reaper(self) -> None:
        """Stop the maintenance: its task is cancelled (``maintenance_stopped`` waits for it to end)."""
        self._stopped.set()
        task = self._maintenance
        if task is not None and not task.done():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is task.get_loop():
                task.cancel()
            else:  # from another thread: the loop cancels it
                task.get_loop().call_soon_threadsafe(task.cancel)

    async def maintenance_stopped(self) -> None:
        """Wait (a bounded while) until the cancelled maintenance task has ended: nothing of it runs on."""
        task = self._maintenance
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), REAPER_STOP)

    def close_idle_of_ended_loop(self) -> int:
        """Close the idle connections of an event loop that has ended, without awaiting; return how many.

        Their ``close()`` coroutine needs the loop that opened them. libpq's
        ``finish`` needs none: it closes the socket, telling the server goodbye.
        """
        closed = 0
        while (record := self._internals.take_idle()) is not None:
            connection = record.driver_connection
            if connection is not None:
                connection.pgconn.finish()
                closed += 1
        return closed
