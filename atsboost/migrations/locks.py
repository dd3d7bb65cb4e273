"""One migrator at a time, and naming whoever blocks a migration.

The migration lock is a session-level PostgreSQL advisory lock held on its own
connection for the whole run. It is polled with ``pg_try_advisory_lock`` rather
than waited for with ``pg_advisory_lock``: a blocked waiter would deadlock with
``CREATE INDEX CONCURRENTLY``, which waits for every open transaction. A
session lock (not a transaction lock) survives the commits of per-revision
transactions and autocommit blocks, and is released if the process dies.

A waiter does not sleep blindly between polls: it LISTENs on a channel the holder
NOTIFYs when it lets go, so it tries again within milliseconds of the release. The
poll stays as the fallback for a holder that died without notifying.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from sqlalchemy import Connection, Engine, text

from atsboost.errors import MigrationError

logger = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """Return a stable signed 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def advisory_lock(engine: Engine, key: int, *, wait: float) -> Iterator[None]:
    """Hold the advisory lock ``key`` for the block, polling for at most ``wait`` seconds."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        deadline = time.monotonic() + wait
        announced = False
        listening = False
        while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one():
            if not listening:  # listen first, then try again: a release in between is not missed
                conn.execute(text(f"LISTEN {_CHANNEL}"))
                listening = True
                continue
            holder = _holder(conn, key)
            if time.monotonic() >= deadline:
                raise MigrationError(
                    f"another migrator (pid {holder}) still holds the migration lock after {wait:g} s; "
                    "let it finish, or raise MIGRATION_LOCK_WAIT"
                )
            if not announced:
                logger.info("waiting for another migrator (pid %s) to finish", holder)
                announced = True
            _wait_for_release(
                conn, min(0.25 + random.random() * 0.25, max(deadline - time.monotonic(), 0.01))
            )
        if listening:
            conn.execute(text(f"UNLISTEN {_CHANNEL}"))
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.execute(text(f"NOTIFY {_CHANNEL}"))


_CHANNEL = "atsboost_migration_lock"


def _wait_for_release(conn: Connection, seconds: float) -> None:
    """Wait up to ``seconds`` for a holder's NOTIFY (or any other wake-up); the caller polls again."""
    dbapi_connection = conn.connection.dbapi_connection
    if isinstance(dbapi_connection, psycopg.Connection):
        for _ in dbapi_connection.notifies(timeout=seconds, stop_after=1):
            return
    else:  # another driver: plain polling
        time.sleep(seconds)


def _holder(conn: Connection, key: int) -> int | None:
    """Return the pid holding the advisory lock ``key`` in this database, if visible."""
    row = conn.execute(
        text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = ((:k >> 32) & 4294967295)::bigint::oid AND objid = (:k & 4294967295)::bigint::oid"
            " AND objsubid = 1"
        ),
        {"k": key},
    ).first()
    return int(row[0]) if row else None


@dataclass(frozen=True)
class Blocker:
    """A session that held a lock the migration waited for."""

    pid: int
    user: str | None
    application: str | None
    state: str | None
    transaction_seconds: float | None
    query: str

    def describe(self) -> str:
        """One line for an operator: who, how long, doing what."""
        age = f", in a transaction for {self.transaction_seconds:.0f} s" if self.transaction_seconds else ""
        return (
            f"pid {self.pid} (user {self.user}, application {self.application or '-'}, {self.state}{age}): "
            f"{self.query}"
        )


class BlockerWatch:
    """Record who blocks a backend, from another connection, while a migration runs.

    When a statement gives up on ``lock_timeout`` its lock wait is over, and with it
    the evidence; so the watch samples ``pg_blocking_pids`` while it is still waiting.
    """

    def __init__(self, engine: Engine, pid: int, *, interval: float) -> None:
        self._engine = engine
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="atsboost-blocker-watch", daemon=True)
        self.blockers: list[Blocker] = []

    def __enter__(self) -> BlockerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            with self._engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                while not self._stop.wait(self._interval):
                    found = self._sample(conn)
                    if found:
                        self.blockers = found
        except Exception:  # the watch only adds detail to an error; never fail the migration
            logger.debug("blocker watch stopped", exc_info=True)

    def _sample(self, conn: Connection) -> list[Blocker]:
        rows = conn.execute(
            text(
                "SELECT pid, usename, application_name, state,"
                " extract(epoch FROM now() - xact_start) AS age, left(query, 200) AS query"
                " FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(:pid)) ORDER BY xact_start"
            ),
            {"pid": self._pid},
        ).all()
        return [Blocker(r.pid, r.usename, r.application_name, r.state, r.age, r.query) for r in rows]
