"""Put a test database back as it was migrated, after a test that committed for real.

A test marked ``transactional=False`` commits through real connections, so no
rollback undoes it. Afterwards every table is truncated and the rows the
migrations had put there (reference data, Alembic's version table, atsboost's
checksums) are copied back, and each sequence is set where it stood when they were
read: the next test sees the rows of a freshly cloned database. They are read once,
the first time a test needs them, while the rows are still as cloned (earlier tests
rolled back); sequences are not transactional, so those tests may have moved them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from atsboost.errors import TestDatabaseError

_TABLES = """
SELECT n.nspname, c.relname,
       array_agg(a.attname ORDER BY a.attnum) FILTER (WHERE a.attgenerated = '')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
GROUP BY n.nspname, c.relname
"""
_SEQUENCES = """
SELECT schemaname, sequencename, last_value, start_value FROM pg_sequences
WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
"""
LOCK_WAIT = 10.0
"""How long (seconds) putting a database back waits for a table a connection still holds."""


@dataclass(frozen=True)
class Table:
    """A table, its columns that take values (generated ones do not), and its rows as migrated."""

    name: sql.Composable
    columns: tuple[str, ...]
    rows: bytes = b""


@dataclass
class Snapshot:
    """Every table of the database with the rows it held, and where each sequence stood."""

    tables: list[Table] = field(default_factory=list)
    sequences: list[tuple[sql.Composable, int | None, int]] = field(default_factory=list)

    @classmethod
    def read(cls, conn: psycopg.Connection[Any]) -> Snapshot:
        """Read the database's tables, their rows (binary COPY) and its sequences."""
        snapshot = cls()
        for schema, table, columns in conn.execute(_TABLES).fetchall():
            name = sql.Identifier(schema, table)
            snapshot.tables.append(Table(name, tuple(columns or ()), _copy_out(conn, name, columns or [])))
        for schema, sequence, last, start in conn.execute(_SEQUENCES).fetchall():
            snapshot.sequences.append((sql.Identifier(schema, sequence), last, start))
        return snapshot

    def restore(self, conn: psycopg.Connection[Any], *, lock_wait: float = LOCK_WAIT) -> None:
        """Truncate every table, copy the migrated rows back and set each sequence where it stood."""
        if not self.tables:
            return
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{int(lock_wait * 1000)}ms'")
            try:
                names = sql.SQL(", ").join(table.name for table in self.tables)
                conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))
            except psycopg.errors.LockNotAvailable:
                raise TestDatabaseError(
                    "a connection the test opened still holds a table after it ended, so its rows cannot "
                    f"be removed (waited {lock_wait:g} s); close every connection and session the test opens"
                ) from None
            _without_triggers(conn)
            for table in self.tables:
                if table.rows:
                    _copy_in(conn, table)
            for name, last, start in self.sequences:
                value, called = (last, True) if last is not None else (start, False)
                conn.execute("SELECT setval(%s::regclass, %s, %s)", [name.as_string(conn), value, called])


def _copy_out(conn: psycopg.Connection[Any], name: sql.Composable, columns: list[str]) -> bytes:
    """Return the table's rows in COPY's binary format; nothing for an empty table."""
    if not columns or conn.execute(sql.SQL("SELECT FROM {} LIMIT 1").format(name)).fetchone() is None:
        return b""
    listed = sql.SQL(", ").join(sql.Identifier(column) for column in columns)
    statement = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT binary)").format(listed, name)
    with conn.cursor().copy(statement) as copy:
        return b"".join(bytes(block) for block in copy)


def _copy_in(conn: psycopg.Connection[Any], table: Table) -> None:
    listed = sql.SQL(", ").join(sql.Identifier(column) for column in table.columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(table.name, listed)
    with conn.cursor().copy(statement) as copy:
        copy.write(table.rows)


def _without_triggers(conn: psycopg.Connection[Any]) -> None:
    """Copy the rows back as they were: no trigger (an ``updated_at``) and no foreign-key check runs.

    That takes a superuser; with another role the triggers run, as on any insert.
    """
    try:
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        pass
