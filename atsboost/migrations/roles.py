"""Least privilege: the owner migrates, the application changes rows only, a read-only role reads.

``statements`` is the SQL ``atsboost-db roles`` prints; ``apply`` runs it in one
transaction, idempotently, as the role DATABASE_MIGRATION_URL (else DATABASE_URL)
names. ``ALTER DEFAULT PRIVILEGES FOR ROLE <owner>`` grants every table a later
revision creates, so no revision needs a GRANT of its own; ``unusable`` is the migrate
step's check that this held. No password is ever set or shown here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg import sql

from atsboost.config.roles import RoleNames
from atsboost.errors import RolesError, first_line
from atsboost.migrations.run.locks import lock_key
from atsboost.runtime import privileges

if TYPE_CHECKING:
    import psycopg

    from atsboost.config.settings import Settings

logger = logging.getLogger("atsboost.migrations")

_TABLE_WRITES = sql.SQL("SELECT, INSERT, UPDATE, DELETE")
_LOCK_TIMEOUT = "30s"  # another `roles --apply` holds the lock: wait this long, then say so

# Objects of the schema owned by another role than the owner: what `apply` passes to it.
_FOREIGN = """
SELECT c.oid::regclass::text AS object, CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
       WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind
FROM pg_class c
WHERE c.relnamespace = {schema}::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND c.relowner <> {owner}::regrole AND NOT c.relispartition
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.deptype IN ('a', 'i', 'e'))  -- a column's sequence follows its table
UNION ALL
SELECT t.oid::regtype::text, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END
FROM pg_type t
WHERE t.typnamespace = {schema}::regnamespace AND t.typtype IN ('e', 'd', 'r')
  AND t.typowner <> {owner}::regrole
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')
UNION ALL
SELECT p.oid::regprocedure::text, CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END
FROM pg_proc p
WHERE p.pronamespace = {schema}::regnamespace AND p.prokind IN ('f', 'p')
  AND p.proowner <> {owner}::regrole
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
"""


@dataclass(frozen=True)
class Statement:
    """One step of the set-up: what it is for, and its SQL."""

    purpose: str
    sql: str
    adopts: bool = False  # passes existing objects to the owner: `apply` names them first


@dataclass
class RolesResult:
    """What ``apply`` found and did."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)  # objects passed to the owner
    statements: list[Statement] = field(default_factory=list)


def statements(names: RoleNames, schema: str = "public") -> list[Statement]:
    """Return the set-up's SQL: roles, the schema, existing objects, grants and default privileges."""
    return [
        *_roles(names),
        *_schema(names, schema),
        Statement(f"existing objects of {schema} pass to the owner", _adopt(names, schema), adopts=True),
        *_grants(names, schema),
    ]


_CREATE_ROLE = (
    "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {name}) THEN "
    "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS; "
    "END IF; END $$"
)
_READ_ONLY = (
    "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {name} "
    "AND 'default_transaction_read_only=on' = ANY (COALESCE(rolconfig, '{{}}'))) THEN "
    "ALTER ROLE {role} SET default_transaction_read_only = on; END IF; END $$"
)
# A provider's admin (CREATEROLE, no superuser) must act as the owner to set its default
# privileges and give it the admin's tables; a superuser, or the owner itself, already may.
_ACT_AS_OWNER = (
    "DO $$ BEGIN IF NOT pg_has_role(current_user, {name}, 'USAGE') THEN "
    "EXECUTE format('GRANT %I TO %I', {name}, current_user); END IF; END $$"
)


def _roles(names: RoleNames) -> list[Statement]:
    """Create each role if missing: it logs in, and may do nothing else on the server."""
    kinds = (("owner", names.owner), ("application", names.application), ("read-only", names.readonly))
    found = [
        Statement(f"the {kind} role, if missing", _sql(_CREATE_ROLE, **_named(role))) for kind, role in kinds
    ]
    found.append(
        Statement(
            "the read-only role's transactions are read-only", _sql(_READ_ONLY, **_named(names.readonly))
        )
    )
    owner = _named(names.owner)
    found.append(Statement("the one running this may act as the owner", _sql(_ACT_AS_OWNER, **owner)))
    return found


def _named(role: str) -> dict[str, sql.Composable]:
    return {"name": sql.Literal(role), "role": sql.Identifier(role)}


def _schema(names: RoleNames, schema: str) -> list[Statement]:
    """Let the owner create in the schema, and the others use it and create nothing."""
    o, a, r, s = _identifiers(names, schema)
    connect = (
        "DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO {roles}', current_database()); END $$"
    )
    found = [Statement("each role may connect", _sql(connect, roles=sql.SQL(", ").join([o, a, r])))]
    if schema != "public":
        found.append(
            Statement("the schema", _sql("CREATE SCHEMA IF NOT EXISTS {s} AUTHORIZATION {o}", s=s, o=o))
        )
    return [
        *found,
        Statement(
            "the owner creates in the schema", _sql("GRANT USAGE, CREATE ON SCHEMA {s} TO {o}", s=s, o=o)
        ),
        Statement("nobody else does", _sql("REVOKE CREATE ON SCHEMA {s} FROM PUBLIC", s=s)),
        Statement("the others use it", _sql("GRANT USAGE ON SCHEMA {s} TO {a}, {r}", s=s, a=a, r=r)),
    ]


def _adopt(names: RoleNames, schema: str) -> str:
    """Return a DO block that passes each object of the schema another role owns to the owner."""
    query = _foreign(names, schema)
    body = (
        "DO $$ DECLARE found record; BEGIN FOR found IN {query} LOOP "
        "EXECUTE format('ALTER %s %s OWNER TO %I', found.kind, found.object, {owner}); END LOOP; END $$"
    )
    return _sql(body, query=sql.SQL(query), owner=sql.Literal(names.owner))


def _foreign(names: RoleNames, schema: str) -> str:
    return _sql(_FOREIGN, schema=sql.Literal(schema), owner=sql.Literal(names.owner))


def _grants(names: RoleNames, schema: str) -> list[Statement]:
    """Rows for the application, reading for the read-only role: on today's tables and every later one."""
    o, a, r, s = _identifiers(names, schema)
    default = "ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} "
    each = {"o": o, "a": a, "r": r, "s": s, "w": _TABLE_WRITES}
    steps = [
        ("the application changes rows", "GRANT {w} ON ALL TABLES IN SCHEMA {s} TO {a}"),
        ("and nothing else", "REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {s} FROM {a}"),
        ("it draws from sequences", "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {a}"),
        ("the read-only role reads", "GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}"),
        (
            "and nothing else",
            "REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER "
            "ON ALL TABLES IN SCHEMA {s} FROM {r}",
        ),
        ("tables of later revisions: rows for the application", default + "GRANT {w} ON TABLES TO {a}"),
        ("their sequences", default + "GRANT USAGE, SELECT ON SEQUENCES TO {a}"),
        ("reading for the read-only role", default + "GRANT SELECT ON TABLES TO {r}"),
    ]
    return [Statement(purpose, _sql(text, **each)) for purpose, text in steps]


def _identifiers(names: RoleNames, schema: str) -> tuple[sql.Identifier, ...]:
    return tuple(sql.Identifier(n) for n in (names.owner, names.application, names.readonly, schema))


def _sql(template: str, **parts: sql.Composable) -> str:
    """Compose with psycopg's quoting; the names are checked identifiers, so no connection is needed."""
    return sql.SQL(template).format(**parts).as_string(None)


def apply(settings: Settings, schema: str = "public") -> RolesResult:
    """Run the set-up in one transaction on the migration connection; run again, it changes nothing.

    Creating a role needs a superuser or CREATEROLE (a provider's admin user); once the
    roles exist the owner itself can run it, for the grants.
    """
    from atsboost.migrations.run.session import migration_engine

    names, steps = settings.roles, statements(settings.roles, schema)
    engine = migration_engine(settings)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
            return _run(driver, names, schema, steps)
    finally:
        engine.dispose()


def _run(conn: psycopg.Connection[Any], names: RoleNames, schema: str, steps: list[Statement]) -> RolesResult:
    import psycopg

    rows = privileges.rows_of(conn)
    result = RolesResult(statements=steps)
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("atsboost:roles"),))
            for role in (names.owner, names.application, names.readonly):
                (result.existing if privileges.role_exists(rows, role) else result.created).append(role)
            for step in steps:
                if step.adopts and _schema_exists(rows, schema):
                    result.adopted = [row["object"] for row in rows(_foreign(names, schema))]
                conn.execute(step.sql.encode())  # bytes: run as written, no placeholders
    except psycopg.Error as exc:
        raise RolesError(_advice(exc, names)) from None
    return result


def _schema_exists(rows: privileges.Rows, schema: str) -> bool:
    return bool(
        rows("SELECT count(*) AS found FROM pg_namespace WHERE nspname = $1::text", schema)[0]["found"]
    )


def _advice(exc: BaseException, names: RoleNames) -> str:
    """Say why the set-up failed and who can run it."""
    problem = first_line(exc)
    if getattr(exc, "sqlstate", None) in ("42501", "2BP01"):
        return (
            f"the roles were not set up ({problem}); nothing was changed. Run `atsboost-db roles --apply` "
            "with DATABASE_MIGRATION_URL naming a superuser or your provider's admin user (CREATEROLE) to "
            f"create them; once they exist, {names.owner} itself can run it for the grants"
        )
    if getattr(exc, "sqlstate", None) == "55P03":
        return (
            f"the roles were not set up: another `atsboost-db roles --apply` held its lock for "
            f"{_LOCK_TIMEOUT}; run it again"
        )
    return f"the roles were not set up ({problem}); nothing was changed"


def unusable(settings: Settings) -> list[str]:
    """Say what the application's role (DATABASE_URL's user) cannot use, after a migration as the owner.

    Asked on the migration connection, and only where DATABASE_MIGRATION_URL names
    another user than DATABASE_URL: with one role for both, the owner can use everything.
    """
    application = settings.url.username if settings.url is not None else None
    direct = settings.migration_url
    if application is None or direct is None or direct.username in (None, application):
        return []
    from atsboost.migrations.integrity.current import connect

    conn = connect(settings)
    if conn is None:
        return []
    with conn:
        rows = privileges.rows_of(conn)
        if not privileges.role_exists(rows, application):
            missing = f"DATABASE_URL's role {application} does not exist"
            return [f"{missing}; create it with `atsboost-db roles --apply`"]
        return [
            f"{application} cannot use {gap['kind']} {gap['object']} (no {', '.join(gap['missing'])}): "
            f"{gap['grant']}, or once `atsboost-db roles --apply` so later revisions need none"
            for gap in privileges.gaps(rows, application)
        ]
