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
from typing import Any, Generic, TypeVar

import sqlalchemy
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.engine import Engine

from atsboost.config.replicas import ReplicaSettings
from atsboost.config.settings import Settings
from atsboost.errors import first_line
from atsboost.runtime.engine import side_engine_args

logger = logging.getLogger(__name__)

E = TypeVar("E")  # an Engine, or an AsyncEngine for atsboost.aio

# Replay lag as the replica sees it: none when it has replayed all it received (an idle
# primary sends nothing), else the age of the last transaction it replayed, or, when it
# has replayed none since it started, the time since it started.
LAG = text(
    "SELECT pg_is_in_recovery(), CASE WHEN NOT pg_is_in_recovery()"
    " OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 ELSE EXTRACT(EPOCH FROM"
    " now() - COALESCE(pg_last_xact_replay_timestamp(), pg_postmaster_start_time())) END"
)
PROBE_TIMEOUT = text("SET LOCAL statement_timeout = '2s'")


@dataclass
class Replica(Generic[E]):
    """One replica: its engine (sync or async), and what its last measurement said."""

    name: str
    engine: E
    probe: Engine
    lag: float | None = None
    in_recovery: bool | None = None
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
            self.lag, self.in_recovery, self.problem = float(lag), bool(in_recovery), None
        except (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError) as exc:
            self.lag, self.problem = None, f"unreachable ({first_line(exc)})"
        self.measured_at = time.monotonic()

    def describe(self) -> dict[str, object]:
        """Return what the last measurement said: role, replay lag, or the problem reaching it."""
        role = None if self.problem else "standby" if self.in_recovery else "primary"
        return {"url": self.name, "role": role, "replay_lag_seconds": self.lag, "problem": self.problem}

    def why_not(self, max_lag: float) -> str:
        """Say why this replica is not used."""
        if self.problem is not None:
            return f"{self.name}: {self.problem}"
        return f"{self.name}: replay lag {self.lag:.1f} s is over DATABASE_REPLICA_MAX_LAG={max_lag:g}"


class ReplicaSet(Generic[E]):
    """The replicas of one database, and the choice of one for a read-only transaction."""

    def __init__(
        self, replicas: list[Replica[E]], settings: ReplicaSettings, *, measure_inline: bool
    ) -> None:
        self.replicas = replicas
        self._settings = settings
        self._measuring = threading.Lock()
        self._warned = False
        self._measure_inline = measure_inline

    @classmethod
    def build(
        cls, settings: Settings, make_engine: Callable[[Settings], E], *, measure_inline: bool
    ) -> ReplicaSet[E]:
        """Build a pool (and a one-connection probe) per replica of ``settings``.

        ``measure_inline=False`` (asyncio): ``choose`` does no I/O; the caller runs
        ``measure_stale`` in a worker thread first.
        """
        replicas = []
        for url in settings.replicas.urls:
            own = settings.for_replica(url)
            replicas.append(Replica(url.masked(), make_engine(own), _probe_engine(own)))
        return cls(replicas, settings.replicas, measure_inline=measure_inline)

    def choose(self, exclude: Collection[Any] = ()) -> E | None:
        """Return a usable replica's engine (at random among them), or None: read from the primary."""
        if self._measure_inline:
            self.measure_stale()
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

    def suspect(self, engine: object) -> None:
        """Leave out the replica of ``engine`` (it failed a transaction) until it is measured again."""
        for replica in self.replicas:
            if replica.engine is engine:
                replica.problem = "failed a transaction; measured again shortly"
                replica.measured_at = time.monotonic()

    def measure_stale(self) -> None:
        """Measure the replicas whose reading is older than the check interval (one caller at a time)."""
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


def _probe_engine(settings: Settings) -> Engine:
    """One kept connection per replica for its measurements, never taken from the readers' pool."""
    assert settings.url is not None  # a replica always has its URL
    url = settings.url.sqlalchemy()
    connect_timeout = max(1, min(settings.connect_timeout, 2))
    args = side_engine_args(settings, url, "replica-lag", connect_timeout=connect_timeout)
    return sqlalchemy.create_engine(
        url, pool_size=1, max_overflow=0, pool_timeout=2, connect_args=args, hide_parameters=True
    )


class Reads(Generic[E]):
    """Where one database's read-only transactions go: a replica, or the primary right after a write.

    Read-your-writes: once a write commits in a context (a thread, an asyncio task, a
    request), that context reads from the primary for DATABASE_REPLICA_STICKY_SECONDS,
    as Rails' automatic role switching does with its ``delay``.
    """

    def __init__(
        self, settings: Settings, make_engine: Callable[[Settings], E], *, asynchronous: bool
    ) -> None:
        self._settings = settings
        self._make_engine = make_engine
        self._asynchronous = asynchronous
        self._replicas: ReplicaSet[E] | None = None
        self._lock = threading.Lock()
        self._last_write: ContextVar[float | None] = ContextVar(f"atsboost_wrote_{id(self)}", default=None)

    @property
    def enabled(self) -> bool:
        """True when replicas are configured."""
        return bool(self._settings.replicas.urls)

    @property
    def replicas(self) -> ReplicaSet[E]:
        """The replica set, built on first use."""
        if self._replicas is None:
            with self._lock:
                if self._replicas is None:
                    self._replicas = ReplicaSet.build(
                        self._settings, self._make_engine, measure_inline=not self._asynchronous
                    )
        return self._replicas

    def wrote(self) -> None:
        """Note that a write committed in the current context."""
        if self.enabled:
            self._last_write.set(time.monotonic())

    def sticky(self) -> bool:
        """Tell whether reads stay on the primary: no replicas, or a write here under the sticky time ago."""
        last_write = self._last_write.get()
        recent = (
            last_write is not None and time.monotonic() - last_write < self._settings.replicas.sticky_seconds
        )
        return not self.enabled or recent

    def router(self, primary: E) -> Callable[[], E]:
        """Return the engine chooser of one read-only transaction: asked once per attempt.

        A replica first; after a failed attempt, another replica (the failed one is left
        out until measured again); the primary when none is usable, or just after a write.
        """
        if self.sticky():
            return lambda: primary
        replicas, tried = self.replicas, list[E]()

        def route() -> E:
            if tried:
                replicas.suspect(tried[-1])
            chosen = replicas.choose(exclude=tried)
            if chosen is None:
                return primary
            tried.append(chosen)
            return chosen

        return route

    def detach(self) -> ReplicaSet[E] | None:
        """Forget the replica set (rebuilt on next use) and return it, for its owner to close."""
        with self._lock:
            replicas, self._replicas = self._replicas, None
        return replicas
