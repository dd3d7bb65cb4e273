"""One migrator at a time: the migration lock, and the same lock for seeding.

The migration lock is a session-level PostgreSQL advisory lock held on its own
connection for the whole run. It is polled with ``pg_try_advisory_lock`` rather
than waited for with ``pg_advisory_lock``: a blocked waiter would deadlock with
``CREATE INDEX CONCURRENTLY``, which waits for every open transaction. A
session lock (not a transaction lock) survives the commits of per-revision
transactions and autocommit blocks, and is released if the process dies.

A waiter does not sleep blindly between polls: it LISTENs on a channel the holder
NOTIFYs when it lets go, so it tries again within milliseconds of the release. The
poll stays as the fallback for a holder that died without notifying. The lock is
held on a psycopg connection, so ``migrate`` can queue before loading Alembic.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from atsboost import metrics
from atsboost.errors import MigrationError

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import Engine

logger = logging.getLogger("atsboost.migrations.locks")

_CHANNEL = "atsboost_migration_lock"


def lock_key(name: str) -> int:
    """Return a stable signed 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def migration_key(version_table: str = "alembic_version") -> int:
    """Return the key of the lock migrations of ``version_table`` take."""
    return lock_key(f"atsboost:migrate:{version_table}")


@contextmanager
def advisory_lock(engine: Engine, key: int, *, wait: float) -> Iterator[None]:
    """Hold the advisory lock ``key`` for the block, on a connection of its own from ``engine``."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
        with held(driver, key, wait=wait):
            yield


@contextmanager
def held(conn: psycopg.Connection[Any], key: int, *, wait: float) -> Iterator[None]:
    """Hold the advisory lock ``key`` on ``conn`` (autocommit), polling for at most ``wait`` seconds."""
    began = time.monotonic()
    deadline = began + wait
    announced = listening = False
    while not _try(conn, key):
        if not listening:  # listen first, then try again: a release in between is not missed
            conn.execute(f"LISTEN {_CHANNEL}")
            listening = True
            continue
        holder = _holder(conn, key)
        if time.monotonic() >= deadline:
            raise MigrationError(
                f"another migrator (pid {holder}) still holds the migration lock after {wait:g} s; "
                "let it finish, or raise MIGRATION_LOCK_WAIT"
            )
        if not announced:
            logger.info(
                "waiting for another migrator (pid %s) to finish",
                holder,
                extra={"event": "migration_lock_wait", "holder_pid": holder},
            )
            announced = True
        seconds = min(0.25 + random.random() * 0.25, max(deadline - time.monotonic(), 0.01))
        for _ in conn.notifies(timeout=seconds, stop_after=1):
            break  # a holder let go (or another NOTIFY): try again now
    if listening:
        conn.execute(f"UNLISTEN {_CHANNEL}")
    metrics.registry.migrations.lock_waited(time.monotonic() - began)
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s::bigint)", (key,))
        conn.execute(f"NOTIFY {_CHANNEL}")


def _try(conn: psycopg.Connection[Any], key: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s::bigint)", (key,)).fetchone()
    return bool(row and row[0])


def _holder(conn: psycopg.Connection[Any], key: int) -> int | None:
    """Return the pid holding the advisory lock ``key`` in this database, if visible."""
    row = conn.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid = ((%(k)s::bigint >> 32) & 4294967295)::oid"
        " AND objid = (%(k)s::bigint & 4294967295)::oid AND objsubid = 1",
        {"k": key},
    ).fetchone()
    return int(row[0]) if row else None
