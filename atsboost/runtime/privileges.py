"""What the role a connection uses may do: its attributes, the tables it owns, the privileges it lacks.

The health report, ``atsboost-db config --connect`` and the migrate step ask these.
Each query reads the catalog only, which every role may. "The tables it uses" are those
of the schemas on its search path; the migrations' bookkeeping tables are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

Rows = Callable[..., list[dict[str, Any]]]

BOOKKEEPING = ("alembic_version", "atsboost_checksums")
"""Tables the application does not use: Alembic's and atsboost's records of the migrations."""

WRITES = ("SELECT", "INSERT", "UPDATE", "DELETE")
"""What an application role needs on each table: rows, never the schema (no TRUNCATE, no DDL)."""

_ROLE = """
SELECT r.rolname AS name, r.rolsuper AS superuser, r.rolcreaterole AS createrole,
       r.rolcreatedb AS createdb, r.rolbypassrls AS bypassrls, r.rolreplication AS replication,
       pg_is_in_recovery() OR 'default_transaction_read_only=on' = ANY (COALESCE(r.rolconfig, '{}'))
         AS read_only
FROM pg_roles r WHERE r.rolname = current_user
"""

# Tables whose owner the role is, or is a member of (it may act as their owner: DROP, ALTER).
_OWNED = """
SELECT format('%I.%I', n.nspname, c.relname) AS table
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY (current_schemas(false))
  AND pg_has_role(current_user, c.relowner, 'MEMBER')
ORDER BY 1
"""

# $1 role, $2 privileges on tables, $3 bookkeeping tables, $4 whether it writes (sequences).
_GAPS = """
SELECT object, kind, missing,
       format('GRANT %s ON %s%s TO %I', array_to_string(missing, ', '),
              CASE kind WHEN 'table' THEN '' ELSE upper(kind) || ' ' END, object, $1::text) AS grant
FROM (
  SELECT quote_ident(n.nspname) AS object, 'schema' AS kind,
         ARRAY(SELECT 'USAGE' WHERE NOT has_schema_privilege($1::text, n.oid, 'USAGE')) AS missing
  FROM pg_namespace n WHERE n.nspname = ANY (current_schemas(false))
  UNION ALL
  SELECT format('%I.%I', n.nspname, c.relname), 'table',
         ARRAY(SELECT p FROM unnest($2::text[]) AS p WHERE NOT has_table_privilege($1::text, c.oid, p))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY (current_schemas(false))
    AND c.relname <> ALL ($3::text[])
  UNION ALL
  SELECT format('%I.%I', n.nspname, c.relname), 'sequence',
         ARRAY(SELECT 'USAGE' WHERE $4::boolean AND NOT has_sequence_privilege($1::text, c.oid, 'USAGE'))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'S' AND n.nspname = ANY (current_schemas(false))
    AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'i')  -- identity
) AS found
WHERE cardinality(missing) > 0
ORDER BY kind, object
"""

_EXISTS = "SELECT count(*) AS found FROM pg_roles WHERE rolname = $1::text"


def rows_of(conn: psycopg.Connection[Any]) -> Rows:
    """Return ``rows(sql, *params)`` over ``conn``: ``$1`` placeholders, rows as dicts."""

    def rows(query: str, *params: Any) -> list[dict[str, Any]]:
        with psycopg.RawCursor(conn, row_factory=dict_row) as cursor:
            cursor.execute(query, params or None)  # RawCursor: $1 placeholders, so '%' in format() is text
            return cursor.fetchall()

    return rows


def connected_role(rows: Rows) -> dict[str, Any]:
    """Describe the connected role: its attributes, the tables it owns, the privileges it lacks.

    A superuser lacks nothing and is not said to own anything: it is worse than either.
    A read-only role (``default_transaction_read_only``, or a standby) needs SELECT alone.
    """
    [found] = rows(_ROLE)
    superuser, read_only = found["superuser"], found.pop("read_only")
    found["owns"] = [] if superuser else [row["table"] for row in rows(_OWNED)]
    found["missing"] = [] if superuser else gaps(rows, found["name"], writes=not read_only)
    return found


def gaps(rows: Rows, role: str, *, writes: bool = True) -> list[dict[str, Any]]:
    """Return what ``role`` lacks on the schemas, tables and sequences it uses, each with its GRANT."""
    privileges = list(WRITES if writes else WRITES[:1])
    return rows(_GAPS, role, privileges, list(BOOKKEEPING), writes)


def role_exists(rows: Rows, role: str) -> bool:
    """Tell whether ``role`` exists on the server."""
    return bool(rows(_EXISTS, role)[0]["found"])
