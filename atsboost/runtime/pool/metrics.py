"""A pool's counters: enrolled in ``atsboost.metrics.registry``, fed by SQLAlchemy's pool events.

New connections and invalidations are counted through the pool's public
``connect`` and ``invalidate`` events; they fire only when a connection is
opened or invalidated, never on a checkout. The gauges are read from the live
pool at snapshot time. The counters pass to the pool that ``Engine.dispose()``
puts in place (``adopt``), so they only ever grow.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import URL

from atsboost import metrics
from atsboost.metrics.stats import DISABLED, MonitorView, PoolStats
from atsboost.runtime.pool.internals import pool_usage

if TYPE_CHECKING:
    from atsboost.runtime.pool.queue import IdleTimeoutQueuePool


def pool_name(url: URL, *, asynchronous: bool = False) -> str:
    """Name a pool's figures: the database and where it is, never who connects."""
    hosts = url.query.get("host", "local")  # ?host=a:5432&host=b:5432: libpq's host list
    where = url.host or (",".join(hosts) if isinstance(hosts, tuple) else str(hosts))
    port = f":{url.port}" if url.port else ""
    return f"{url.database}@{where}{port}" + (" (async)" if asynchronous else "")


def enrol(pool: IdleTimeoutQueuePool, name: str | None) -> PoolStats:
    """Create a new pool's counters in the registry and start counting its connections.

    Without a name (``DATABASE_METRICS=false``) the pool gets counters that count
    nothing and are in no registry.
    """
    if name is None:
        adopt(pool, DISABLED)
        return DISABLED
    stats = metrics.registry.pool(name)
    event.listen(pool, "connect", lambda *_: stats.count("opened"))
    event.listen(pool, "invalidate", lambda *_: stats.count("invalidated"))
    adopt(pool, stats)
    return stats


def adopt(pool: IdleTimeoutQueuePool, stats: PoolStats) -> None:
    """Give ``pool`` (a recreated one) these counters, and read the gauges from it from now on."""
    pool.stats = stats
    if not stats.enabled:
        return
    ref = weakref.ref(pool)  # the counters must not keep a disposed pool alive

    def gauges() -> dict[str, int]:
        live = ref()
        return gauge_values(live) if live is not None else {}

    stats.read_gauges(gauges)


def watch(pool: object, monitor: MonitorView, *, running: bool = True) -> None:
    """Report ``monitor``'s state with the pool's figures while it runs (``running=False``: it stopped)."""
    stats = stats_of(pool)
    if stats is not None:
        (stats.watch if running else stats.unwatch)(monitor)


def stats_of(pool: object) -> PoolStats | None:
    """Return the counters of an atsboost pool (None for a plain SQLAlchemy pool)."""
    return getattr(pool, "stats", None)


def gauge_values(pool: Any) -> dict[str, int]:
    """Read the pool's size, limit, connections checked out and idle, and checkouts waiting."""
    checked_out, capacity = pool_usage(pool)
    return {
        "size": pool.size(),
        "capacity": capacity,
        "checked_out": checked_out,
        "idle": pool.checkedin(),
        "waiting": pool.waiting(),
    }
