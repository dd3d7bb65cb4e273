"""What a migration would do, seen before it runs: its SQL, and the tables a downgrade drops.

The SQL is the dry run's, and each revision's alone for the lint and the SQL checksums.

The tables are read from the downgrade functions' source (``op.drop_table("x")``
and ``DROP TABLE x``), so a revision that builds table names at run time is not
seen; a downgrade to base is held back whatever it names.
"""

from __future__ import annotations

import inspect
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from alembic import command, context
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, MetaData, text

from atsboost.config.settings import MigrationSettings, Settings
from atsboost.migrations.options import MigrationOptions
from atsboost.migrations.project import alembic_config
from atsboost.migrations.results import Revision
from atsboost.migrations.session import session_timeouts

_DROPS = re.compile(
    r"""drop_table\(\s*["']([\w.]+)["']|\bDROP TABLE (?:IF EXISTS )?([\w.\"]+)""", re.IGNORECASE
)
_SAMPLE = 10_000
_CONCURRENT_BUILD = re.compile(r"CREATE (?:UNIQUE )?INDEX CONCURRENTLY IF NOT EXISTS (\w+)", re.IGNORECASE)


@dataclass(frozen=True)
class DroppedTable:
    """A table a downgrade drops, and how many rows it holds (counted up to a bound)."""

    name: str
    rows: int

    def __str__(self) -> str:
        amount = f"over {_SAMPLE:,}" if self.rows > _SAMPLE else f"{self.rows:,}"
        return f"{self.name} ({amount} rows)"


def render_sql(
    current: Sequence[str], out: TextIO, metadata: list[MetaData], settings: MigrationSettings
) -> None:
    """Write the SQL of the command at hand, from ``current``, with the same timeouts as a real run.

    This configures Alembic's context for offline SQL for the rest of the run.
    """
    context.configure(
        dialect_name="postgresql",
        as_sql=True,
        # Several heads (branches) are accepted at run time: MigrationContext reads a list.
        starting_rev=current[0] if len(current) == 1 else (list(current) or None),  # type: ignore[arg-type]
        literal_binds=True,
        transaction_per_migration=True,
        output_buffer=out,
        target_metadata=metadata,
    )
    for statement in session_timeouts(settings):
        context.execute(statement)
    context.run_migrations()


def print_dry_run(
    out: TextIO,
    current: Sequence[str],
    plan: Sequence[Revision],
    metadata: list[MetaData],
    settings: MigrationSettings,
    *,
    upgrade: bool,
    conn: Connection,
) -> None:
    """Print what a migration would do: the current revision, the plan, then its SQL.

    The SQL is rendered offline, which cannot see the database; what the online run
    will do beyond it (rebuild an INVALID index left by a failed build) is noted first.
    """
    state = ", ".join(current) if current else "none (empty database)"
    print(f"-- atsboost dry run: nothing is applied. Current revision: {state}", file=out)
    if not plan:
        print("-- nothing to migrate: the database is at head", file=out)
        return
    what = "pending revision(s)" if upgrade else "revision(s) to revert"
    print(f"-- {len(plan)} {what}, in order:", file=out)
    for revision in plan:
        print(f"--   {revision}", file=out)
    invalid = _invalid_indexes(conn)
    sql = io.StringIO()
    render_sql(current, sql, metadata, settings)
    for name in sorted(set(_CONCURRENT_BUILD.findall(sql.getvalue())) & invalid):
        print(
            f"-- note: index {name} is INVALID (a failed concurrent build); the run drops and rebuilds it",
            file=out,
        )
    print("-- The SQL below is what a migration would run, with the same timeouts:", file=out)
    out.write(sql.getvalue())


def _invalid_indexes(conn: Connection) -> set[str]:
    """Name the INVALID indexes; inside a caller's transaction through a savepoint, leaving it as it was."""
    query = text(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid"
    )
    if conn.in_transaction():
        with conn.begin_nested():
            return set(conn.execute(query).scalars())
    try:
        return set(conn.execute(query).scalars())
    finally:
        conn.rollback()


def dropped_tables(
    scripts: ScriptDirectory, plan: Sequence[Revision], conn: Connection
) -> list[DroppedTable]:
    """Return the existing tables the plan's downgrades drop, with their rows (at most 10,001 counted)."""
    names: list[str] = []
    for revision in plan:
        script = scripts.get_revision(revision.id)
        if script is not None:
            names += [a or b for a, b in _DROPS.findall(inspect.getsource(script.module.downgrade))]
    found = []
    for name in dict.fromkeys(names):
        exists = conn.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}).scalar_one()
        if exists:
            sample = f"SELECT count(*) FROM (SELECT 1 FROM {name} LIMIT {_SAMPLE + 1}) AS sample"
            found.append(DroppedTable(name.strip('"'), int(conn.exec_driver_sql(sample).scalar_one())))
    return found


def render(settings: Settings | None, script: Script) -> str:
    """Alembic's offline SQL for exactly this revision."""
    out = io.StringIO()
    config = alembic_config(settings, MigrationOptions("upgrade", settings=settings), output=out)
    down = script.down_revision
    start = down if isinstance(down, str) else None  # a merge point adds no statements of its own
    command.upgrade(config, f"{start}:{script.revision}" if start else script.revision, sql=True)
    return out.getvalue()
