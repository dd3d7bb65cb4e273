"""The operator's database report behind ``atsboost-db health``: one read-only pass, under a second.

``collect(conn)`` builds a typed HealthReport over one psycopg connection (so the
command starts without loading SQLAlchemy; ``health.connect`` hands it one). Every
query is read-only, runs under a short statement_timeout, and works for an ordinary
role: a section the role cannot read is left empty with a note that says what to grant.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from atsboost.errors import first_line
from atsboost.health import replication
from atsboost.health import sql as q
from atsboost.health.model import ConnectionInfo, HealthReport, Usage
from atsboost.runtime import privileges
from atsboost.runtime.privileges import Rows
from atsboost.runtime.transaction_start import opens_own_transactions

if TYPE_CHECKING:  # importing migrations would load more than the report needs
    from atsboost.migrations import MigrationStatus

logger = logging.getLogger(__name__)

_LOCK_NOT_AVAILABLE = "55P03"
_QUERY_CANCELED = "57014"
STATEMENT_TIMEOUT_SECONDS = 2.0
"""The bound on each of the report's queries; a section that exceeds it says so."""
T = TypeVar("T")


def unreachable(database: str, exc: BaseException, started: float) -> HealthReport:
    """Return the report of a server that could not be reached: the reason, nothing else."""
    result = _empty(database)
    result.connection.error = first_line(exc)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _empty(database: str) -> HealthReport:
    return HealthReport(
        generated_at=dt.datetime.now(dt.UTC).isoformat(),
        database=database,
        seconds=0.0,
        connection=ConnectionInfo(reachable=False),
    )


def collect(
    conn: psycopg.Connection[Any],
    database: str,
    *,
    long_query_seconds: float = 60.0,
    unused_index_bytes: int = 1024 * 1024,
    migration_status: MigrationStatus | None = None,
    started: float | None = None,
) -> HealthReport:
    """Collect the report on ``conn`` with every query read-only and bounded; never raises.

    A connection in a transaction's hands (an engine's) gets one read-only transaction,
    ``SET LOCAL`` and a savepoint per query, all rolled back, so nothing leaks into it.
    A connection of the report's own in autocommit mode gets the same limits as session
    settings, and each query is its own transaction: a third of the round trips.
    """
    started = started or time.perf_counter()
    result = _empty(database)
    own = conn.autocommit and not opens_own_transactions(conn)  # an engine's, under runtime.pipeline
    try:
        with contextlib.nullcontext() if own else conn.transaction(force_rollback=True):
            # Never queue behind a lock (a migration, VACUUM FULL): give up at once and say who holds it.
            timeout = round(STATEMENT_TIMEOUT_SECONDS * 1000)
            conn.execute(
                f"SET statement_timeout = {timeout}; SET lock_timeout = '50ms'; "
                "SET default_transaction_read_only = on"
                if own
                else f"SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {timeout}; "
                "SET LOCAL lock_timeout = '50ms'"
            )
            result.connection = _connection(conn, started, migration_status)
            rows = _querying(conn, savepoints=not own)
            _collect(rows, result, long_query_seconds, unused_index_bytes)
            if migration_status is None:
                result.connection.revision = _section("revision", result.notes, lambda: _revision(rows)) or []
    except psycopg.Error as exc:
        result.connection.error = first_line(exc)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _querying(conn: psycopg.Connection[Any], *, savepoints: bool) -> Rows:
    """Return ``rows(sql, *params)``; a section that fails fails alone (a savepoint, or autocommit)."""
    plain = privileges.rows_of(conn)

    def rows(sql: str, *params: Any) -> list[dict[str, Any]]:
        try:
            with conn.transaction() if savepoints else contextlib.nullcontext():
                return plain(sql, *params)
        except psycopg.Error as exc:
            raise _SectionFailed(exc, _lock_holders(conn, exc)) from None

    return rows


def _collect(rows: Rows, result: HealthReport, long_seconds: float, unused: int) -> None:
    notes = result.notes

    def value(sql: str, *params: Any) -> Any:
        [row] = rows(sql, *params)
        return next(iter(row.values()))

    result.database_bytes = _section("size", notes, lambda: _database_size(value, notes))
    result.largest_tables = records(
        _section("size", notes, lambda: _unlocked(rows, notes, q.LARGEST_TABLES, q.LARGEST_TABLES_ESTIMATED))
    )
    result.tables = records(_section("table statistics", notes, lambda: rows(q.TABLE_STATS)))
    if _section("connections", notes, lambda: value(q.SEES_EVERY_SESSION)) is False:
        notes.append(
            "sessions: other roles' queries and states are hidden from this role, so long queries and "
            "blocking show its own; grant it pg_read_all_stats, or run the report as a role that has it"
        )
    result.usage = _section("connections", notes, lambda: _usage(rows, value))
    result.long_queries = records(_section("long queries", notes, lambda: rows(q.LONG_QUERIES, long_seconds)))
    result.blocking = records(_section("blocking", notes, lambda: rows(q.BLOCKING)))
    result.invalid_indexes = records(
        _section(
            "indexes", notes, lambda: _unlocked(rows, notes, q.INVALID_INDEXES, q.INVALID_INDEXES_UNLOCKED)
        )
    )
    result.unused_indexes = records(_section("indexes", notes, lambda: rows(q.UNUSED_INDEXES, unused)))
    result.duplicate_indexes = records(_section("indexes", notes, lambda: rows(q.DUPLICATE_INDEXES)))
    result.cache_hit_ratio = _section("cache", notes, lambda: value(q.CACHE_HIT))
    result.xid_age = _section("wraparound", notes, lambda: value(q.XID_AGE))
    result.sequences = records(_section("sequences", notes, lambda: rows(q.SEQUENCES)))
    result.replication = _section("replication", notes, lambda: replication.collect(rows))
    role: Any = _section("role", notes, lambda: privileges.connected_role(rows))
    result.role = role  # the schema's Role record (health.records), held to it by test_collect
    installed = _section("slow queries", notes, lambda: value(q.HAS_STATEMENTS))
    if installed:
        found = _section("slow queries", notes, lambda: rows(q.STATEMENTS))
        result.statements = None if found is None else records(found)
    elif installed is not None:
        notes.append(
            "slow query statistics: pg_stat_statements is not installed; add it to "
            "shared_preload_libraries, restart, and run CREATE EXTENSION pg_stat_statements"
        )


def records(found: list[dict[str, Any]] | None) -> list[Any]:
    """Return a section's rows, none when it could not be read; typed by the field they go to.

    The rows are the schema's records (``health.records``): ``test_records`` holds the
    records to the schema and ``test_collect`` every collected row to it.
    """
    return found or []


def _database_size(value: Callable[..., Any], notes: list[str]) -> int | None:
    """Return the database's size: exact, or from the catalog where reading every file would be slow."""
    relations = value(q.RELATIONS)
    if relations <= q.EXACT_DATABASE_SIZE_UP_TO:
        return value(q.DATABASE_SIZE)  # type: ignore[no-any-return]
    notes.append(
        f"size: the database size is estimated from the catalog ({relations:,} relations; "
        "pg_database_size would read the size of every file)"
    )
    return value(q.DATABASE_SIZE_ESTIMATED)  # type: ignore[no-any-return]


def _section(name: str, notes: list[str], collect: Callable[[], T]) -> T | None:
    """Run one section; if it cannot be read, note why and what to do instead of failing the report."""
    try:
        return collect()
    except _SectionFailed as failed:
        notes.append(f"{name}: {failed.advice()}")
        return None


def _unlocked(rows: Rows, notes: list[str], query: str, without_locks: str) -> list[dict[str, Any]]:
    """Run ``query``; while a table it needs is locked, its lock-free variant, noting who holds the lock."""
    try:
        return rows(query)
    except _SectionFailed as failed:
        if failed.holders is None:
            raise
        notes.append(f"read from the catalog alone while {failed.holders} holds an exclusive lock")
        return rows(without_locks)


def _lock_holders(conn: psycopg.Connection[Any], exc: psycopg.Error) -> str | None:
    """Name the tables and pids whose exclusive lock made a query give up (lock_timeout), else None."""
    if exc.sqlstate != _LOCK_NOT_AVAILABLE:
        return None
    with conn.transaction():
        row = conn.execute(q.LOCK_HOLDERS).fetchone()
    return str((row[0] if row else None) or "another session")


def _connection(
    conn: psycopg.Connection[Any], started: float, status: MigrationStatus | None
) -> ConnectionInfo:
    row = conn.execute(q.SERVER).fetchone()
    assert row is not None  # one row, always
    info = ConnectionInfo(
        reachable=True,
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
        server_version=row[0],
        ssl=bool(row[1]),
    )
    if status is not None:
        info.revision, info.head = list(status.current), list(status.heads)
        info.pending_revisions = len(status.pending)
        info.edited_revisions = list(status.edited)
    return info


def _revision(rows: Rows) -> list[str]:
    """Read alembic_version, which a plain role may not be allowed to (the caller notes it)."""
    if not rows("SELECT to_regclass('alembic_version') IS NOT NULL AS present")[0]["present"]:
        return []
    return [row["version_num"] for row in rows("SELECT version_num FROM alembic_version")]


def _usage(rows: Rows, value: Callable[..., Any]) -> Usage:
    limits = rows(q.CONNECTION_LIMITS)[0]
    by_state = {r["state"]: r["count"] for r in rows(q.BY_STATE)}
    return Usage(
        max_connections=limits["max_connections"],
        reserved=limits["reserved"],
        total=sum(by_state.values()),
        by_state=by_state,
        by_application={r["application"]: r["count"] for r in rows(q.BY_APPLICATION)},
        oldest_idle_in_transaction_seconds=value(q.OLDEST_IDLE_IN_TRANSACTION),
        pool_checked_out=None,
        pool_capacity=None,
    )


class _SectionFailed(Exception):
    def __init__(self, error: psycopg.Error, holders: str | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.holders = holders

    def advice(self) -> str:
        """Say why the section is missing, and what to do, matching the cause."""
        return section_advice(self.error, self.holders)


def section_advice(error: BaseException, holders: str | None = None) -> str:
    """Say why a section of the report could not be read, and what to do, matching the cause.

    ``error`` is psycopg's, or SQLAlchemy's DBAPIError wrapping it.
    """
    code = getattr(getattr(error, "orig", None) or error, "sqlstate", None)
    if holders is not None:
        return f"skipped while {holders} holds an exclusive lock it needs; run again after"
    if code == _QUERY_CANCELED:
        return (
            f"timed out after {STATEMENT_TIMEOUT_SECONDS:g} s (the report's bound on every query); "
            "the server is busy or the catalog very large: run the report again later"
        )
    if code == "42501":
        return (
            f"not readable by this role ({first_line(error)}); grant it pg_read_all_stats "
            "or run the report as the database owner"
        )
    return first_line(error)
