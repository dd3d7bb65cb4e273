"""Where the runtime's counters are found: every live pool's, and the migrations'.

Like ``logging``'s root logger or prometheus_client's ``REGISTRY``, one registry
serves the process (``atsboost.metrics.registry``); a pool enrols on creation
and drops out when it is garbage-collected. Pools are told apart by name: the
database they reach (``atsboost@db.example.com:5432``) and ``(async)`` for an
AsyncEngine's; a second pool of the same name gets ``#2``.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from atsboost.metrics.listeners import Listener, Listeners
from atsboost.metrics.stats import MigrationStats, PoolStats


class Registry:
    """The process's pools and migration counters; ``snapshot()`` reads them all."""

    def __init__(self) -> None:
        self.listeners = Listeners()
        self.migrations = MigrationStats(self.listeners)
        self._pools: weakref.WeakValueDictionary[str, PoolStats] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def pool(self, name: str) -> PoolStats:
        """Return new counters for a pool called ``name`` (made unique), enrolled here."""
        with self._lock:
            unique, n = name, 1
            while unique in self._pools:
                n += 1
                unique = f"{name}#{n}"
            stats = PoolStats(unique, self.listeners)
            self._pools[unique] = stats
            return stats

    def listen(self, listener: Listener) -> None:
        """Tell ``listener`` of every figure recorded from now on, by any pool or migration."""
        self.listeners.add(listener)

    def unlisten(self, listener: Listener) -> None:
        """Stop telling ``listener``."""
        self.listeners.remove(listener)

    def snapshot(self) -> dict[str, Any]:
        """Return every figure as a plain dict: ``pools`` by name, and ``migrations``."""
        with self._lock:
            # items(), not dict(self._pools): a pool collected between dict()'s listing of the keys
            # and its lookup of one would raise KeyError; items() yields only the live ones.
            pools = dict(self._pools.items())
        return {
            "pools": {name: stats.snapshot() for name, stats in sorted(pools.items())},
            "migrations": self.migrations.snapshot(),
        }
