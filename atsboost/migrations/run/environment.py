"""The function an Alembic ``env.py`` calls to get atsboost's safety: :func:`run_migrations`.

Offline (``alembic upgrade head --sql``) it writes the SQL, starting with the same
timeouts an online run sets. Online it takes the database from atsboost's settings
(never from alembic.ini) and adds what Alembic leaves to each team: a dry run that
knows the database (``MIGRATION_DRYRUN=true`` or ``-x dry_run=true``), a production
force gate (``MIGRATION_REQUIRE_FORCE``; ``MIGRATION_FORCE`` or ``-x force=true``),
one migrator at a time, lock and statement timeouts, and each revision in its own
transaction. The models of every schema component the project includes (the
ATSBoost application's, unless left out) are part of the compared metadata, so
autogenerate never proposes to drop their tables.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Collection, Sequence

from alembic import context
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import MetaData

from atsboost.errors import AtsboostError
from atsboost.migrations.components import included
from atsboost.migrations.revisions import rewrite
from atsboost.migrations.run import session
from atsboost.migrations.run.online import OnlineRun
from atsboost.migrations.run.options import check_x_arguments, invocation, options_of
from atsboost.migrations.run.plan import plan
from atsboost.migrations.run.rendering import render_sql

# Commands that apply or record revisions compare no models: the components' (and with them the
# ORM) load only for those that do (revision --autogenerate, check) or that are not known.
_APPLYING = frozenset({"upgrade", "downgrade", "stamp"})


def run_migrations(
    target_metadata: MetaData | Sequence[MetaData] | None = None,
    *,
    offline: bool,
    x_arguments: Collection[str] = (),
) -> None:
    """Run the Alembic command at hand: write its SQL (``offline``) or apply it with atsboost's gates.

    ``target_metadata`` is the application's MetaData (or several), for autogenerate;
    the included schema components' are added where models are compared. ``x_arguments``: the ``-x``
    keys the application's env.py reads itself (any other is refused). Call it from
    ``env.py`` only, while Alembic runs.
    """
    try:
        check_x_arguments(x_arguments)
    except AtsboostError as exc:
        raise CommandError(str(exc)) from exc
    applying = invocation(context.config)[0] in _APPLYING
    metadata = _listed(target_metadata) if applying else combined_metadata(target_metadata, context.script)
    if offline:
        _run_offline(metadata)
        return
    if not _needs_database(context.config):
        _run_without_database(metadata)
        return
    try:
        with session.connection(context.config) as connection:
            OnlineRun(connection, metadata).run()
    except AtsboostError as exc:
        # Alembic's command line prints a CommandError as one FAILED: line; the cause stays attached.
        raise CommandError(str(exc)) from exc


def combined_metadata(
    target_metadata: MetaData | Sequence[MetaData] | None, scripts: ScriptDirectory
) -> list[MetaData]:
    """Return the application's metadata plus its included components', each once.

    Once: an application may subclass a component's declarative Base.
    """
    combined: list[MetaData] = []
    for metadata in [*_listed(target_metadata), *(c.load_metadata() for c in included(scripts))]:
        if all(metadata is not seen for seen in combined):
            combined.append(metadata)
    return combined


def _listed(target_metadata: MetaData | Sequence[MetaData] | None) -> list[MetaData]:
    if target_metadata is None:
        return []
    return [target_metadata] if isinstance(target_metadata, MetaData) else list(target_metadata)


def _needs_database(config: Config) -> bool:
    """Tell whether the alembic command at hand reads the database.

    ``revision_environment = true`` runs env.py for ``alembic history`` and ``revision``
    too; in vanilla Alembic they need no database (a CI job's single-head check runs
    before one exists), and neither does atsboost's routing of a new revision.
    """
    options = config.cmd_opts
    if options is None:  # called through the API: atsboost's own options say
        own = options_of(config)
        return not (own.command == "revision" and not own.autogenerate)
    command = invocation(config)[0]
    if command == "history":
        return bool(getattr(options, "indicate_current", False)) or "current" in (
            getattr(options, "rev_range", None) or ""
        )
    if command == "revision":
        return bool(getattr(options, "autogenerate", False))
    return True


def _run_without_database(metadata: list[MetaData]) -> None:
    """Run the command's own function (the history listing, a new revision's routing) with no connection."""
    context.configure(
        dialect_name="postgresql",
        as_sql=True,
        output_buffer=io.StringIO(),  # nothing is executed: the command prints for itself
        target_metadata=metadata,
        process_revision_directives=rewrite(metadata),
    )
    context.run_migrations()


def _run_offline(metadata: list[MetaData]) -> None:
    """Write the SQL of the range asked (``alembic upgrade A:B --sql``), with the same timeouts.

    A revision that cannot be rendered is named in place, and the rest is written after it.
    """
    command = invocation(context.config)[0]
    start = context.get_starting_revision_argument()
    current = () if start is None else (start,) if isinstance(start, str) else tuple(start)
    destination = context.get_revision_argument()
    target = destination if isinstance(destination, str) else "heads"
    upgrade, steps = plan(command, target, current, scripts=context.script)
    out = context.config.output_buffer or sys.stdout
    settings = session.migration_settings(context.config)
    render_sql(current, out, metadata, settings, steps, upgrade=upgrade)
