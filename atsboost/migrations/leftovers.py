"""What a failed revision left behind: the objects a step outside its transaction committed.

A revision's transaction rolls back whole, unless a step ran in an
``autocommit_block`` (``CREATE INDEX CONCURRENTLY``): that commits what came
before it, and what it built. The schema's objects are listed after each applied
revision, so after a failure the difference is exactly what stayed behind.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

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
