"""Read replicas: a pool per replica, its replay lag measured now and then, and the choice of one.

A read-only transaction goes to a replica that is up and whose replay lag is within
DATABASE_REPLICA_MAX_LAG. The lag is read on the replica itself, at most every
DATABASE_REPLICA_CHECK_INTERVAL seconds per process, over a connection kept for that
alone, by whichever transaction first finds the reading stale; the others use the
reading they find, so no transaction waits for a query of its own. With no usable
replica, reads go to the primary and a WARNING says why, once until one is usable
again. A replica that fails a transaction is left out until it is measured again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection
from contextvars import ContextVar
from dataclasses import dataclass, field

import sqlalchemy
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.engine import Engine

from atsboost.config.replicas import ReplicaSettings
from atsboost.config.settings import Settings
from atsboost.errors import first_line
from atsboost.runtime.engine import create_engine, side_engine_args

logger = logging.getLogger(__name__)

# Replay lag as the replica sees it: none when it has replayed all it received (an idle
# primary sends nothing), else the age of the last transaction it replayed.
LAG = text(
    "SELECT pg_is_in_recovery(), CASE WHEN NOT pg_is_in_recovery()"
    " OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)
PROBE_TIMEOUT = text("SET LOCAL statement_timeout = '2s'")


@dataclass
class Replica:
    """One replica: its engine, and what its last measurement said."""

    name: str
    engine: Engine
    probe: Engine
    lag: float | None = None
    problem: str | None = "not measured yet"
    measured_at: float = field(default=float("-inf"))

    def usable(self, max_lag: float) -> bool:
        """Up, and replaying within ``max_lag`` seconds."""
        return self.problem is None and self.lag is not None and self.lag <= max_lag

    def measure(self) -> None:
        """Read the replay lag on the replica now (bounded: 2 s of query, the probe's connect timeout)."""
        try:
            with self.probe.connect() as conn:
                conn.execute(PROBE_TIMEOUT)
                in_recovery, lag = conn.execute(LAG).one()
            self.lag, self.problem = float(lag), None
        except (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError) as exc:
            self.lag, self.problem = None, f"unreachable ({first_line(exc)})"
        self.measured_at = time.monotonic()

    def why_not(self, max_lag: float) -> str:
        """Say why this replica is not used."""
        if self.problem is not None:
            return f"{self.name}: {self.problem}"
        return f"{self.name}: replay lag {self.lag:.1f} s is over DATABASE_REPLICA_MAX_LAG={max_lag:g}"


class ReplicaSet:
    """The replicas of one database, and the choice of one for a read-only transaction."""

    def __init__(self, replicas: list[Replica], settings: ReplicaSettings) -> None:
        self.replicas = replicas
        self._settings = settings
        self._measuring = threading.Lock()
        self._warned = False

    @classmethod
    def build(cls, settings: Settings) -> ReplicaSet:
        """Build a pool (and a one-connection probe) per replica of ``settings``."""
        replicas = []
        for url in settings.replicas.urls:
            own = settings.for_replica(url)
            engine = create_engine(own)
            replicas.append(Replica(url.masked(), engine, _probe_engine(own, engine)))
        return cls(replicas, settings.replicas)

    def choose(self, exclude: Collection[Engine] = ()) -> Engine | None:
        """Return a usable replica's engine (at random among them), or None: read from the primary."""
        self._measure_stale()
        max_lag = self._settings.max_lag
        usable = [r for r in self.replicas if r.usable(max_lag) and r.engine not in exclude]
        if usable:
            self._warned = False
            return random.choice(usable).engine
        if not self._warned and not exclude:
            self._warned = True
            reasons = "; ".join(r.why_not(max_lag) for r in self.replicas)
            logger.warning(
                "no read replica is usable (%s); reads go to the primary until one is",
                reasons,
                extra={"event": "replicas_unusable"},
            )
        return None

    def suspect(self, engine: Engine) -> None:
        """Leave out the replica of ``engine`` (it failed a transaction) until it is measured again."""
        for replica in self.replicas:
            if replica.engine is engine:
                replica.problem = "failed a transaction; measured again shortly"
                replica.measured_at = time.monotonic()

    def dispose(self, *, close: bool = True) -> None:
        """Close (or, in a forked worker, drop unclosed) every replica's connections."""
        for replica in self.replicas:
            replica.engine.dispose(close=close)
            replica.probe.dispose(close=close)

    def _measure_stale(self) -> None:
        now = time.monotonic()
        stale = [r for r in self.replicas if now - r.measured_at >= self._settings.check_interval]
        if not stale:
            return
        first = any(r.measured_at == float("-inf") for r in stale)
        # The first reading is waited for (bounded); later ones are taken by one transaction alone.
        if not self._measuring.acquire(timeout=5.0 if first else 0):
            return
        try:
            for replica in stale:
                if time.monotonic() - replica.measured_at >= self._settings.check_interval:
                    replica.measure()
        finally:
            self._measuring.release()


def _probe_engine(settings: Settings, engine: Engine) -> Engine:
    """One kept connection per replica for its measurements, never taken from the readers' pool."""
    connect_timeout = max(1, min(settings.connect_timeout, 2))
    args = side_engine_args(settings, engine.url, "replica-lag", connect_timeout=connect_timeout)
    return sqlalchemy.create_engine(
        engine.url, pool_size=1, max_overflow=0, pool_timeout=2, connect_args=args, hide_parameters=True
    )


class Reads:
    """Where one database's read-only transactions go: a replica, or the primary right after a write.

    Read-your-writes: once a write commits in a context (a thread, an asyncio task, a
    request), that context reads from the primary for DATABASE_REPLICA_STICKY_SECONDS,
    as Rails' automatic role switching does with its ``delay``.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._replicas: ReplicaSet | None = None
        self._lock = threading.Lock()
        self._last_write: ContextVar[float | None] = ContextVar(f"atsboost_wrote_{id(self)}", default=None)

    @property
    def enabled(self) -> bool:
        """True when replicas are configured."""
        return bool(self._settings.replicas.urls)

    @property
    def replicas(self) -> ReplicaSet:
        """The replica set, built on first use."""
        if self._replicas is None:
            with self._lock:
                if self._replicas is None:
                    self._replicas = ReplicaSet.build(self._settings)
        return self._replicas

    def wrote(self) -> None:
        """Note that a write committed in the current context."""
        if self.enabled:
            self._last_write.set(time.monotonic())

    def router(self, primary: Engine) -> Callable[[], Engine]:
        """Return the engine chooser of one read-only transaction: asked once per attempt.

        A replica first; after a failed attempt, another replica (the failed one is left
        out until measured again); the primary when none is usable, or just after a write.
        """
        last_write = self._last_write.get()
        sticky = self._settings.replicas.sticky_seconds
        if not self.enabled or (last_write is not None and time.monotonic() - last_write < sticky):
            return lambda: primary
        replicas, tried = self.replicas, list[Engine]()

        def route() -> Engine:
            if tried:
                replicas.suspect(tried[-1])
            chosen = replicas.choose(exclude=tried)
            if chosen is None:
                return primary
            tried.append(chosen)
            return chosen

        return route

    def dispose(self, *, close: bool = True) -> None:
        """Close (or, in a forked worker, drop unclosed) the replicas' connections; rebuilt on next use."""
        with self._lock:
            replicas, self._replicas = self._replicas, None
        if replicas is not None:
            replicas.dispose(close=close)
