"""The lock trace: the locks each pending statement really takes, read from pg_locks, then rolled back.

As Eugene does: the revisions' transactional statements run inside one
transaction on the real database (or a staging copy), under a short
``lock_timeout`` so production never waits on the trace for long; after each
statement ``pg_locks`` says what this session holds, and a changed
``relfilenode`` says a table was rewritten. The transaction is always rolled back.
Statements that run outside a transaction (CONCURRENTLY) are reported with the
lock they are documented to take, and are not run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy.exc
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, text

from atsboost.config.settings import Settings, get_settings
from atsboost.errors import MigrationError, RevisionNotRenderableError, first_line
from atsboost.migrations.leftovers import left_behind, snapshot
from atsboost.migrations.lint import Statement, statements
from atsboost.migrations.project import alembic_config, script_directory
from atsboost.migrations.rendering import render
from atsboost.migrations.session import migration_engine

BLOCKS = {
    "AccessExclusiveLock": "blocks reads and writes",
    "ExclusiveLock": "blocks writes",
    "ShareRowExclusiveLock": "blocks writes",
    "ShareLock": "blocks writes",
    "ShareUpdateExclusiveLock": "blocks schema changes and VACUUM, not reads or writes",
    "RowExclusiveLock": "blocks neither reads nor writes",
    "RowShareLock": "blocks neither reads nor writes",
    "AccessShareLock": "blocks neither reads nor writes",
}
_LOCKS = text(
    "SELECT c.oid::regclass::text AS name, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
    "WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND c.relkind IN ('r', 'p', 'm') "
    "AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)"
)
_FILES = text("SELECT oid::regclass::text, relfilenode FROM pg_class WHERE relkind IN ('r', 'p', 'm')")
_SIZE = text(
    "SELECT pg_total_relation_size(to_regclass(:t)),"
    " (SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t))"
)
_ORDER = list(BLOCKS)  # strongest first
# The lock a statement that runs outside a transaction is documented to take (it is not run).
_DOCUMENTED = {
    "IndexStmt": "ShareUpdateExclusiveLock",  # CREATE INDEX CONCURRENTLY
    "DropStmt": "ShareUpdateExclusiveLock",  # DROP INDEX CONCURRENTLY
    "AlterTableStmt": "ShareUpdateExclusiveLock",  # VALIDATE CONSTRAINT
    "ReindexStmt": "ShareUpdateExclusiveLock",  # REINDEX CONCURRENTLY
    "UpdateStmt": "RowExclusiveLock",
    "DeleteStmt": "RowExclusiveLock",
}


@dataclass(frozen=True)
class TraceLine:
    """One statement's effect on one table."""

    revision: str
    statement: str
    table: str
    lock: str
    rewritten: bool
    bytes: int | None
    rows: int | None
    traced: bool = True
    note: str | None = None  # why a statement could not be traced

    def __str__(self) -> str:
        if self.note is not None:
            return f"{self.table}: not traced ({self.note})"
        if not self.traced:
            return f"{self.table}: {self.lock} (documented; not traced: runs outside a transaction)"
        size = f"{self.bytes / 1e6:.1f} MB" if self.bytes is not None else "new"
        rows = f"~{self.rows:,} rows" if self.rows is not None and self.rows >= 0 else "rows unknown"
        rewrite = ", rewritten" if self.rewritten else ""
        return f"{self.table}: {self.lock}{rewrite}, {size}, {rows}: {BLOCKS.get(self.lock, '')}"


def trace(
    settings: Settings | None, revisions: Iterable[str], *, lock_timeout: float = 1.0
) -> list[TraceLine]:
    """Trace the revisions' statements on the database, in one transaction that is rolled back."""
    scripts = script_directory(alembic_config(settings))
    engine = migration_engine(settings or get_settings())
    lines: list[TraceLine] = []
    try:
        with engine.connect() as conn:
            before = snapshot(conn)
            conn.rollback()
        with engine.connect() as conn, conn.begin() as transaction:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{round(lock_timeout * 1000)}ms'")
            for revision in revisions:
                script = scripts.get_revision(revision)
                if script is not None:
                    lines += _trace_revision(conn, settings, script, scripts)
            transaction.rollback()
        with engine.connect() as conn:
            left = left_behind(before, conn)
        if left:
            raise MigrationError(
                f"the trace left {', '.join(left)} behind; drop them, and report this as a bug"
            )
    finally:
        engine.dispose()
    return lines


def _trace_revision(
    conn: Connection, settings: Settings | None, script: Script, scripts: ScriptDirectory
) -> list[TraceLine]:
    """Trace one revision's statements; one that cannot be rendered offline is one untraced line."""
    try:
        sql = render(settings, script, scripts)
    except RevisionNotRenderableError as exc:
        note = f"its SQL cannot be rendered offline: {exc.reason}"
        whole = TraceLine(
            script.revision,
            "(the whole revision)",
            "(its tables)",
            "",
            rewritten=False,
            bytes=None,
            rows=None,
        )
        return [dataclasses.replace(whole, traced=False, note=note)]
    lines = []
    for statement in statements(sql, script):
        lines += _trace(conn, script.revision, statement)
    return lines


def _trace(conn: Connection, revision: str, statement: Statement) -> list[TraceLine]:
    short = " ".join(statement.text.split())[:120]
    if not statement.in_transaction:
        table = getattr(getattr(statement.node, "relation", None), "relname", None) or "(database)"
        documented = _DOCUMENTED.get(type(statement.node).__name__, "unknown")
        return [
            TraceLine(
                revision, short, str(table), documented, rewritten=False, bytes=None, rows=None, traced=False
            )
        ]
    before_files = {row[0]: row[1] for row in conn.execute(_FILES)}
    before_locks = {(row.name, row.mode) for row in conn.execute(_LOCKS)}
    try:
        with conn.begin_nested():  # a statement that fails here must not end the whole trace
            conn.exec_driver_sql(statement.text)
    except sqlalchemy.exc.DBAPIError as exc:
        table = str(getattr(getattr(statement.node, "relation", None), "relname", None) or "(database)")
        note = f"it fails here: {first_line(exc)}; a step outside the transaction it needs was not run"
        return [
            TraceLine(
                revision, short, table, "", rewritten=False, bytes=None, rows=None, traced=False, note=note
            )
        ]
    after_files = {row[0]: row[1] for row in conn.execute(_FILES)}
    strongest: dict[str, str] = {}
    for name, mode in {(row.name, row.mode) for row in conn.execute(_LOCKS)} - before_locks:
        if name not in strongest or _ORDER.index(mode) < _ORDER.index(strongest[name]):
            strongest[name] = mode
    lines = []
    for table, mode in sorted(strongest.items()):
        size, rows = conn.execute(_SIZE, {"t": table}).one()
        rewritten = table in before_files and before_files[table] != after_files.get(table)
        known = table in before_files
        estimate = int(rows) if rows is not None else None
        lines.append(
            TraceLine(
                revision,
                short,
                table,
                mode,
                rewritten=rewritten,
                bytes=size if known else None,
                rows=estimate,
            )
        )
    return lines
