"""Every private QueuePool member atsboost's pool uses, in one small adapter, each with why.

SQLAlchemy's QueuePool offers ``size()``, ``checkedout()``, ``overflow()`` and
``status()`` publicly, and nothing to look at the idle connections, to claim a slot
for a new connection, or to read its own limits. The idle-timeout reaper and the
first-come-first-served hand-off need exactly those. Keeping every such call here
means a change in SQLAlchemy's internals (pinned to <2.2 in pyproject) shows up in
this file only, and the pool's tests catch it.
"""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool
from sqlalchemy.util import queue as sqla_queue


class QueuePoolInternals:
    """The private side of one QueuePool, as named operations."""

    def __init__(self, pool: QueuePool) -> None:
        self._target = pool

    def take_idle(self) -> ConnectionPoolEntry | None:
        """Take an idle connection off the pool's stack without waiting; None if there is none."""
        # Pool.connect() would wait, or open a new connection; the reaper and the hand-off need neither.
        try:
            return self._target._pool.get_nowait()
        except sqla_queue.Empty:
            return None

    def put_idle(self, record: ConnectionPoolEntry) -> None:
        """Put a connection back on the idle stack (or close it when the pool is over size)."""
        # QueuePool's own return step; the public checkin path already ran before it, and must not twice.
        QueuePool._do_return_conn(self._target, record)

    def claim_slot(self) -> bool:
        """Claim room for one more connection; False when size plus overflow are all in use."""
        # The overflow counter is private, and must be claimed under QueuePool's own lock.
        return self._target._inc_overflow()

    def release_slot(self) -> None:
        """Give back the room of a connection that was closed, or never opened."""
        # The counterpart of claim_slot, for the same reason.
        self._target._dec_overflow()

    def open(self) -> ConnectionPoolEntry:
        """Open a new pool entry (a new server connection)."""
        # Pool.connect() would come back through the checkout we are implementing.
        return self._target._create_connection()

    @property
    def timeout(self) -> float:
        """Seconds a checkout waits for a free connection (``pool_timeout``)."""
        # create_engine's pool_timeout has no public accessor on the pool.
        return float(self._target._timeout)

    @property
    def max_overflow(self) -> int:
        """Connections allowed beyond the pool's size (``max_overflow``)."""
        # No public accessor either; overflow() is the current count, not the limit.
        return int(self._target._max_overflow)

    def ping(self, dbapi_connection: object) -> None:
        """Run the dialect's liveness check on a raw connection (what ``pool_pre_ping`` runs)."""
        # The pool keeps its dialect private; pre-ping itself cannot be limited to idle connections.
        cast(Dialect, self._target._dialect).do_ping(dbapi_connection)  # type: ignore[arg-type]

    def recycle_older_connections(self) -> None:
        """Make every connection opened before now reconnect at its next checkout."""
        # What the pool does itself after a disconnect error; no public method marks the time alone.
        self._target._invalidate_time = time.time()


def recreating(pool_arguments: dict[str, Any]) -> bool:
    """Tell whether these arguments come from ``Pool.recreate()`` (``Engine.dispose()``)."""
    # recreate() passes the old pool's event dispatch under this private name; nothing public tells.
    return "_dispatch" in pool_arguments


def await_from_greenlet(awaitable: Any) -> Any:
    """Await ``awaitable`` from pool code running in SQLAlchemy's asyncio greenlet (a checkout's wait)."""
    # SQLAlchemy's own AsyncAdaptedQueue waits this way; the asyncio pool offers no public hook for it.
    from sqlalchemy.util import await_

    return await_(awaitable)


async def run_in_greenlet(fn: Any) -> Any:
    """Run the sync pool function ``fn`` from a task, inside a greenlet, so it may close async connections."""
    # What AsyncEngine.dispose() itself does around the pool; there is no public form for other pool calls.
    from sqlalchemy.util import greenlet_spawn

    return await greenlet_spawn(fn)


def pool_usage(pool: Any) -> tuple[int, int]:
    """Return (checked out, capacity) of a QueuePool: capacity is size plus overflow; (0, 0) for others."""
    if not isinstance(pool, QueuePool):
        return 0, 0
    return pool.checkedout(), pool.size() + max(QueuePoolInternals(pool).max_overflow, 0)
