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
import traceback
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from alembic import context
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationInfo, RevisionStep
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, MetaData, text

from atsboost.config.settings import MigrationSettings, Settings
from atsboost.errors import RevisionNotRenderableError, first_line
from atsboost.migrations.project import alembic_config
from atsboost.migrations.results import Revision
from atsboost.migrations.run.options import MigrationOptions
from atsboost.migrations.run.session import session_timeouts

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
    current: Sequence[str],
    out: TextIO,
    metadata: list[MetaData],
    settings: MigrationSettings,
    plan: Sequence[Revision] = (),
    *,
    upgrade: bool = True,
) -> dict[str, str]:
    """Write the SQL of the command at hand, from ``current``, with the same timeouts as a real run.

    A revision of ``plan`` that cannot be rendered offline is named in a comment in
    its place, and the rest is rendered after it; return those, with why. This
    configures Alembic's context for offline SQL for the rest of the run.
    """
    skipped: dict[str, str] = {}
    steps = _Steps(current)
    _offline(steps, metadata)
    for statement in session_timeouts(settings):
        context.execute(statement)
    while True:
        steps.begin_round()
        try:
            context.run_migrations()
        except Exception as exc:
            failed = next((r for r in plan if r.id not in steps.done and r.id not in skipped), None)
            script = context.script.get_revision(failed.id) if failed is not None else None
            if script is None:
                raise
            skipped[script.revision] = reason = why_unrenderable(exc, script.path)
            out.write(steps.completed())
            out.write(
                f"-- revision {script.revision} cannot be rendered as offline SQL ({reason}); it is "
                "applied as written, with the same timeouts, and its SQL is not shown here\n\n"
            )
            steps.skip(script, upgrade=upgrade)
            _offline(steps, metadata)
            continue
        out.write(steps.buffer.getvalue())
        return skipped


class _Steps:
    """Follow an offline render step by step, so that a revision that raises can be cut out and skipped."""

    def __init__(self, heads: Sequence[str]) -> None:
        self.heads = tuple(heads)
        self.done: set[str] = set()
        self.buffer = io.StringIO()
        self.mark = 0
        self.start = 0

    def begin_round(self) -> None:
        self.mark = self.start = self.buffer.tell()

    # Alembic passes these by keyword; positional-or-keyword matches its type hint too.
    def applied(
        self, ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
    ) -> None:
        """Alembic's on_version_apply: a step completed."""
        self.done.update(step.up_revision_ids)
        self.heads = tuple(heads)
        self.mark = self.buffer.tell()

    def completed(self) -> str:
        """Return the SQL of the steps that completed, with the COMMIT the failed step never reached."""
        text = self.buffer.getvalue()[: self.mark]
        self.buffer = io.StringIO()
        return text + "COMMIT;\n\n" if self.mark > self.start else text

    def skip(self, script: Script, *, upgrade: bool) -> None:
        """Go on as if ``script`` had been applied (or reverted)."""
        down = script.down_revision
        parents = () if down is None else (down,) if isinstance(down, str) else tuple(down)
        if upgrade:
            kept, added = [h for h in self.heads if h not in parents], [script.revision]
        else:
            kept, added = [h for h in self.heads if h != script.revision], list(parents)
        self.heads = tuple(dict.fromkeys([*kept, *added]))
        self.done.add(script.revision)


def _offline(steps: _Steps, metadata: list[MetaData]) -> None:
    """Configure Alembic's context for offline SQL from ``steps.heads`` into ``steps.buffer``."""
    heads = steps.heads
    context.configure(
        dialect_name="postgresql",
        as_sql=True,
        # Several heads (branches) are accepted at run time: MigrationContext reads a list.
        starting_rev=heads[0] if len(heads) == 1 else (list(heads) or None),  # type: ignore[arg-type]
        literal_binds=True,
        transaction_per_migration=True,
        output_buffer=steps.buffer,
        target_metadata=metadata,
        on_version_apply=steps.applied,
    )


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
    render_sql(current, sql, metadata, settings, plan, upgrade=upgrade)
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


def render(settings: Settings | None, script: Script, scripts: ScriptDirectory) -> str:
    """Alembic's offline SQL for exactly this revision, from the revisions ``scripts`` loaded once.

    A revision that reads the database (``op.get_bind()``, a Session) cannot be
    rendered: RevisionNotRenderableError says why and where. Online it runs as written.
    """
    out = io.StringIO()
    config = alembic_config(settings, MigrationOptions("upgrade", settings=settings), output=out)
    down = script.down_revision
    start = down if isinstance(down, str) or down is None else list(down)

    def one_step(rev: object, context: MigrationContext) -> list[RevisionStep]:
        # What command.upgrade's own function returns for one revision; building the step
        # here lets every revision render from one loaded ScriptDirectory instead of each
        # reloading them all (command.upgrade loads the files again on every call).
        return [RevisionStep(scripts.revision_map, script, is_upgrade=True)]

    environment = EnvironmentContext(
        config, scripts, fn=one_step, as_sql=True, starting_rev=start, destination_rev=script.revision
    )
    try:
        with environment:
            scripts.run_env()
    except Exception as exc:
        raise RevisionNotRenderableError(script.revision, why_unrenderable(exc, script.path)) from exc
    return out.getvalue()


def why_unrenderable(exc: BaseException, path: str) -> str:
    """One line: the error, and the line of the revision file it came from."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == path]
    where = f" (line {lines[-1]} of {Path(path).name})" if lines else ""
    return f"{type(exc).__name__}: {first_line(exc)}{where}"
