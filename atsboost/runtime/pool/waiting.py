"""How a checkout waits for a connection, and how the pool's maintenance runs: in threads or in asyncio.

The pool's decisions (who is served next, what has expired, what leaked) are the
same for both; only the waiting differs. A thread waits on a bare lock and the
maintenance is a daemon thread. In SQLAlchemy's asyncio engine the pool runs inside
greenlets on the event loop: a checkout waits on a future (so the loop keeps
running), and the maintenance is a task that enters the pool through a greenlet,
since closing an async connection has to happen on its loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from typing import TYPE_CHECKING

from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from atsboost.runtime.pool.queue import IdleTimeoutQueuePool

logger = logging.getLogger("atsboost.runtime.pool.queue")


class ThreadWaiter:
    """A thread waiting for a connection: a bare lock (cheaper than an Event), released on hand-over."""

    __slots__ = ("ready", "record")

    def __init__(self) -> None:
        self.ready = threading.Lock()
        self.ready.acquire()
        self.record: ConnectionPoolEntry | None = None

    def wait(self, timeout: float) -> bool:
        """Wait until handed a connection; False after ``timeout`` seconds."""
        return self.ready.acquire(timeout=timeout)

    def wake(self, record: ConnectionPoolEntry) -> None:
        """Hand ``record`` over (called under the pool's hand-off lock)."""
        self.record = record
        self.ready.release()


class TaskWaiter:
    """An asyncio task waiting for a connection: a future, awaited from the pool's greenlet."""

    __slots__ = ("_loop", "ready", "record")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = self._loop.create_future()
        self.record: ConnectionPoolEntry | None = None

    def wait(self, timeout: float) -> bool:
        """Suspend the task until handed a connection; False after ``timeout`` seconds."""
        from atsboost.runtime.pool.internals import await_from_greenlet

        try:
            await_from_greenlet(asyncio.wait_for(asyncio.shield(self.ready), timeout))
        except TimeoutError:
            return False
        return True

    def wake(self, record: ConnectionPoolEntry) -> None:
        """Hand ``record`` over; the future is resolved on its loop, whichever thread returns it."""
        self.record = record
        self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)


def start_thread(pool: IdleTimeoutQueuePool, stopped: threading.Event, interval: float) -> threading.Thread:
    """Run the pool's maintenance every ``interval`` seconds in a daemon thread, until ``stopped``."""
    thread = threading.Thread(
        target=_maintain_in_thread,
        args=(weakref.ref(pool), stopped, interval),
        name="atsboost-pool-reaper",
        daemon=True,
    )
    thread.start()
    return thread


def start_task(pool: IdleTimeoutQueuePool, stopped: threading.Event, interval: float) -> asyncio.Task[None]:
    """Run the pool's maintenance every ``interval`` seconds in a task of the running loop."""
    return asyncio.get_running_loop().create_task(
        _maintain_in_task(weakref.ref(pool), stopped, interval), name="atsboost-pool-reaper"
    )


def _maintain_in_thread(
    pool_ref: weakref.ref[IdleTimeoutQueuePool], stopped: threading.Event, interval: float
) -> None:
    """Maintain until the pool is disposed or garbage-collected (the thread never keeps it alive)."""
    while not stopped.wait(interval):
        pool = pool_ref()
        if pool is None:
            return
        try:
            pool.maintain()
        except Exception:  # a maintenance thread must never die silently mid-flight
            logger.exception("pool maintenance failed")
        del pool


async def _maintain_in_task(
    pool_ref: weakref.ref[IdleTimeoutQueuePool], stopped: threading.Event, interval: float
) -> None:
    from atsboost.runtime.pool.internals import run_in_greenlet

    while not stopped.is_set():
        await asyncio.sleep(interval)
        pool = pool_ref()
        if pool is None or stopped.is_set():
            return
        try:
            await run_in_greenlet(pool.maintain)
        except Exception:  # a maintenance task must never die silently mid-flight
            logger.exception("pool maintenance failed")
        del pool
