"""What a failed migration tells the operator: which revision, what blocked it, what stayed behind."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy.exc

from atsboost.config.settings import MigrationSettings
from atsboost.errors import MigrationError, first_line
from atsboost.migrations.results import Revision
from atsboost.migrations.run.blockers import Blocker

# psycopg's message for a % that starts no placeholder it knows
_PLACEHOLDERS = "are allowed as placeholders"
_EXISTS = frozenset({"42P07", "42710"})  # duplicate_table (and index), duplicate_object


def is_lock_timeout(exc: BaseException) -> bool:
    """Tell whether a statement gave up waiting for a lock (lock_timeout): worth retrying."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == "55P03"


def failure(
    exc: sqlalchemy.exc.DBAPIError,
    running: Revision | None,
    settings: MigrationSettings,
    blockers: Sequence[Blocker],
    stayed: Sequence[str],
    committed: Sequence[str] = (),
) -> MigrationError:
    """Return the error for a revision that failed: the lock's blockers, or what a step left behind.

    ``stayed`` are the objects, ``committed`` the statements, that had committed before it failed.
    """
    where = f"revision {running}" if running else "the migration"
    statement = " ".join((exc.statement or "").split())[:300]
    if is_lock_timeout(exc):
        named = "; ".join(b.describe() for b in blockers) or "no blocking session was seen"
        pids = ", ".join(str(b.pid) for b in blockers) or "pid"
        return MigrationError(
            f"{where} could not get a lock within MIGRATION_LOCK_TIMEOUT={settings.lock_timeout:g}s "
            f"after {settings.lock_retries + 1} attempts; blocked by {named}. Statement: "
            f"{statement}. It was rolled back; let the blocking transaction finish, or end it "
            f"(SELECT pg_terminate_backend({pids})), and run again"
        )
    if stayed or committed:
        objects = f"these objects stayed behind: {', '.join(stayed)}; " if stayed else ""
        ran = f"these statements had committed: {'; '.join(committed)}; " if committed else ""
        return MigrationError(
            f"{where} failed: {first_line(exc)}. Statement: {statement}. A step outside its "
            f"transaction had already committed, so {objects}{ran}the recorded revision is still the one "
            "before. To finish it, make the revision's steps idempotent (IF NOT EXISTS; "
            "atsboost.migrations.ops.create_index_concurrently; data changes that skip rows already "
            "changed) and run again; to undo it, drop those objects and revert those statements"
        )
    return MigrationError(
        f"{where} failed and was rolled back: {first_line(exc)}. Statement: {statement}. The database "
        f"stays at the revision before it; {_fix(exc)}"
    )


def _fix(exc: sqlalchemy.exc.DBAPIError) -> str:
    """Return the fix for a failed revision: general, or for a revision written for another driver."""
    if getattr(exc.orig, "sqlstate", None) in _EXISTS:
        return (
            "an object it creates exists already, perhaps left by an earlier failed run of this "
            "revision: drop it, or create it with IF NOT EXISTS, then run again"
        )
    if _PLACEHOLDERS in str(exc.orig):
        return (
            "the revision passes a literal % to exec_driver_sql, as a driver without placeholders "
            "(asyncpg) allows; psycopg reads % as a placeholder: write %% for each literal %, or use "
            "op.execute(sa.text(...)), then run again"
        )
    return "fix the revision and run again"
