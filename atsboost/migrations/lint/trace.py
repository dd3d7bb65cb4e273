"""The lock trace: the locks each pending statement really takes, read from pg_locks, then rolled back.

As Eugene does: the revisions' transactional statements run inside one
transaction on the real database (or a staging copy), under a short
``lock_timeout`` so production never waits on the trace for long; after each
statement ``pg_locks`` says what this session holds, and a changed
``relfilenode`` says a table was rewritten. The transaction is always rolled back.
A lock lasts until its transaction ends, so each statement shows the strongest
lock held on each table at that point, with the earlier statement that took it:
after ``ADD COLUMN``, everything else in the revision runs with reads blocked.
A real run commits each revision (and each autocommit block) on its own, so
what is held starts anew there. Statements that run outside a transaction
(CONCURRENTLY) are reported with the lock they are documented to take, and are
not run.
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
from atsboost.migrations.lint.schema import relation_name
from atsboost.migrations.lint.statements import Statement, statements
from atsboost.migrations.project import alembic_config, script_directory
from atsboost.migrations.run.leftovers import left_behind, snapshot
from atsboost.migrations.run.rendering import render
from atsboost.migrations.run.session import migration_engine

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
# Who took a lock that an earlier revision of the trace holds: a real run committed it, so the
# statement takes at most this itself.
_EARLIER = "an earlier revision (a real run commits before this one: this statement takes at most this)"
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
    """One table at one statement: the strongest lock held on it then, and what the statement did."""

    revision: str
    statement: str
    table: str
    lock: str
    rewritten: bool
    bytes: int | None
    rows: int | None
    traced: bool = True
    note: str | None = None  # why a statement could not be traced
    since: str | None = None  # the earlier statement that took ``lock``, still held

    def __str__(self) -> str:
        if self.note is not None:
            return f"{self.table}: not traced ({self.note})"
        if not self.traced:
            return f"{self.table}: {self.lock} (documented; not traced: runs outside a transaction)"
        size = f"{self.bytes / 1e6:.1f} MB" if self.bytes is not None else "new"
        rows = f"~{self.rows:,} rows" if self.rows is not None and self.rows >= 0 else "rows unknown"
        rewrite = ", rewritten" if self.rewritten else ""
        held = f" (held since: {self.since})" if self.since else ""
        return f"{self.table}: {self.lock}{held}{rewrite}, {size}, {rows}: {BLOCKS.get(self.lock, '')}"


@dataclass
class _Held:
    """The locks of the current transaction of a real run: table -> (mode, the statement that took it)."""

    scope: tuple[str, int] = ("", -1)  # (revision, transaction): a real run commits between them
    locks: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)

    def enter(self, revision: str, transaction: int) -> None:
        """Start anew at a new revision or transaction: the real run committed what came before."""
        if (revision, transaction) != self.scope:
            self.scope, self.locks = (revision, transaction), {}

    def take(self, table: str, mode: str, statement: str) -> tuple[str, str | None]:
        """Record ``mode`` taken by ``statement``; return the strongest held, and who took it if earlier."""
        held = self.locks.get(table)
        if held is not None and _ORDER.index(held[0]) <= _ORDER.index(mode):
            return held[0], held[1]
        self.locks[table] = (mode, statement)
        return mode, None


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
            held = _Held()
            for revision in revisions:
                script = scripts.get_revision(revision)
                if script is not None:
                    lines += _trace_revision(conn, settings, script, scripts, held)
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
    conn: Connection, settings: Settings | None, script: Script, scripts: ScriptDirectory, held: _Held
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
        held.enter(script.revision, statement.transaction if statement.in_transaction else -1)
        lines += _trace(conn, script.revision, statement, held)
    return lines


def _trace(conn: Connection, revision: str, statement: Statement, held: _Held) -> list[TraceLine]:
    short = " ".join(statement.text.split())[:120]
    if not statement.in_transaction:
        return [_documented(revision, short, statement)]
    before_files = {row[0]: row[1] for row in conn.execute(_FILES)}
    before_locks = {(row.name, row.mode) for row in conn.execute(_LOCKS)}
    try:
        with conn.begin_nested():  # a statement that fails here must not end the whole trace
            conn.exec_driver_sql(statement.text)
    except sqlalchemy.exc.DBAPIError as exc:
        table = str(getattr(getattr(statement.node, "relation", None), "relname", None) or "(database)")
        note = f"it fails here: {first_line(exc)}; a step outside the transaction it needs was not run"
        args = (revision, short, table, "")
        return [TraceLine(*args, rewritten=False, bytes=None, rows=None, traced=False, note=note)]
    after_files = {row[0]: row[1] for row in conn.execute(_FILES)}
    after_locks = {(row.name, row.mode) for row in conn.execute(_LOCKS)}
    now = {
        table: held.take(table, mode, short) for table, mode in _strongest(after_locks - before_locks).items()
    }
    for table, (mode, taker) in held.locks.items():  # still held, and it blocks someone
        if table not in now and "neither" not in BLOCKS[mode]:
            now[table] = (mode, taker)
    holding = _strongest(after_locks)
    for table in _named(statement) & set(holding) - set(now):  # taken before, maybe by an earlier revision
        now[table] = held.locks.get(table, (holding[table], _EARLIER))
    lines = []
    for table, (mode, since) in sorted(now.items()):
        size, rows = conn.execute(_SIZE, {"t": table}).one()
        known = table in before_files
        rewritten = known and before_files[table] != after_files.get(table)
        estimate = int(rows) if rows is not None else None
        line = TraceLine(revision, short, table, mode, rewritten, size if known else None, estimate)
        lines.append(dataclasses.replace(line, since=since if since != short else None))
    return lines


def _named(statement: Statement) -> set[str]:
    relation = getattr(statement.node, "relation", None)
    return {relation_name(relation)} if relation is not None else set()


def _strongest(locks: set[tuple[str, str]]) -> dict[str, str]:
    """Return the strongest of the (table, mode) pairs, by table."""
    strongest: dict[str, str] = {}
    for table, mode in locks:
        if table not in strongest or _ORDER.index(mode) < _ORDER.index(strongest[table]):
            strongest[table] = mode
    return strongest


def _documented(revision: str, short: str, statement: Statement) -> TraceLine:
    """Return the line of a statement run outside a transaction: the lock it is documented to take."""
    table = getattr(getattr(statement.node, "relation", None), "relname", None) or "(database)"
    documented = _DOCUMENTED.get(type(statement.node).__name__, "unknown")
    args = (revision, short, str(table), documented)
    return TraceLine(*args, rewritten=False, bytes=None, rows=None, traced=False)
