"""What a failed revision left behind: the objects and statements a step outside its transaction committed.

A revision's transaction rolls back whole, unless a step ran in an
``autocommit_block`` (``CREATE INDEX CONCURRENTLY``): that commits what came
before it, and what it built. The schema's objects are listed after each applied
revision, so after a failure the difference is exactly what stayed behind; the
statements the revision ran are followed too, so those that had committed (an
UPDATE before the block, say) are named with their row counts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, event, text

from atsboost.migrations.run.progress import shown

_KINDS = {"r": "table", "p": "table", "i": "index", "S": "sequence", "v": "view", "m": "materialized view"}
_OBJECTS = text(
    "SELECT c.relkind, format('%I.%I', n.nspname, c.relname) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_' "
    "AND c.relkind IN ('r', 'p', 'i', 'S', 'v', 'm')"
)


def snapshot(conn: Connection) -> frozenset[str]:
    """List the schema's tables, indexes, sequences and views, as 'kind name'."""
    return frozenset(f"{_KINDS[kind]} {name}" for kind, name in conn.execute(_OBJECTS))


def left_behind(before: frozenset[str], conn: Connection) -> list[str]:
    """Return what exists now that did not before the failed revision, on a fresh transaction."""
    try:
        return sorted(snapshot(conn) - before)
    finally:
        conn.rollback()


class CommittedStatements:
    """Follow the running revision's statements on ``conn``: which of them have committed.

    A statement commits with the transaction around it (an autocommit_block commits
    the revision's transaction so far), or at once inside the block.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.committed: list[str] = []
        self._pending: list[str] = []
        event.listen(conn, "after_cursor_execute", self._executed)
        event.listen(conn, "commit", self._commit)

    def next_revision(self) -> None:
        """Start afresh: the revision before committed whole."""
        self.committed, self._pending = [], []

    def close(self) -> None:
        """Stop following the connection."""
        event.remove(self.conn, "after_cursor_execute", self._executed)
        event.remove(self.conn, "commit", self._commit)

    # SQLAlchemy's after_cursor_execute hook, with its arguments as SQLAlchemy passes them
    def _executed(
        self, conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: Any
    ) -> None:
        line = shown(statement)  # None: not the revision's own work
        if line is None:
            return
        rows = f" ({cursor.rowcount} rows)" if cursor.rowcount is not None and cursor.rowcount >= 0 else ""
        autocommit = context is not None and context.execution_options.get("isolation_level") == "AUTOCOMMIT"
        (self.committed if autocommit else self._pending).append(f"{line[:200]}{rows}")

    def _commit(self, conn: Connection) -> None:
        self.committed += self._pending
        self._pending = []
