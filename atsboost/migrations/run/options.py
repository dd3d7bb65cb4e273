"""The one object atsboost's migration environment reads, and the result it fills in.

A caller of Alembic's command API (``atsboost.migrations.upgrade`` and friends)
hands a :class:`MigrationOptions` to ``env.py`` as ``config.attributes["atsboost"]``.
Plain ``alembic`` runs without it: the command then comes from Alembic's command
line, and every flag from ``-x`` or the environment.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alembic import context
from alembic.config import Config
from sqlalchemy import Connection, Engine

from atsboost.config.envvars import parse_boolean
from atsboost.errors import MigrationError
from atsboost.migrations.results import AppliedRevision as AppliedRevision
from atsboost.migrations.results import MigrationResult as MigrationResult
from atsboost.migrations.results import Revision as Revision

if TYPE_CHECKING:
    from atsboost.config.settings import Settings

OPTIONS_KEY = "atsboost"
# The -x keys atsboost's env.py reads (dryrun: Alembic users' habit).
X_ARGUMENTS = ("dry_run", "dryrun", "force")


@dataclass(frozen=True)
class MigrationOptions:
    """How atsboost's ``env.py`` runs one Alembic command; None flags defer to ``-x`` and the environment.

    ``command`` and ``destination`` name what was asked ("upgrade" to "heads", ...);
    ``connection`` shares a Connection or Engine (the Alembic cookbook's pattern);
    ``skip_empty`` writes no revision file when autogenerate finds no change;
    ``allow_data_loss`` lets a production downgrade drop tables that hold rows;
    ``lock_held`` is the key of the migration lock the caller holds already (``queue``).
    """

    command: str | None = None
    destination: str | None = None
    settings: Settings | None = None
    connection: Connection | Engine | None = None
    dry_run: bool | None = None
    force: bool | None = None
    skip_empty: bool = False
    allow_data_loss: bool = False
    lock_held: int | None = None
    result: MigrationResult = field(default_factory=MigrationResult)
    autogenerate: bool = False  # a revision compared with the database (the only one that reads it)


def options_of(config: Config) -> MigrationOptions:
    """Return the options handed in through ``config.attributes``, or the defaults of plain Alembic."""
    given = config.attributes.get(OPTIONS_KEY)
    return given if isinstance(given, MigrationOptions) else MigrationOptions()


def invocation(config: Config) -> tuple[str | None, str | None]:
    """Return the Alembic command being run and its destination revision, when known.

    From the options when atsboost called Alembic; from ``Config.cmd_opts`` (Alembic's
    parsed command line) under plain ``alembic``; else (None, None).
    """
    options = options_of(config)
    if options.command is not None:
        return options.command, options.destination
    # Alembic's command line keeps (function, positional names, keyword names) as `cmd`.
    cmd = getattr(config.cmd_opts, "cmd", None)
    if cmd:
        return cmd[0].__name__, getattr(config.cmd_opts, "revision", None)
    return None, None


def run_flag(name: str, *, given: bool | None, default: bool) -> bool:
    """Read a run flag from the caller's options, else ``-x name=...``, else the environment's default."""
    if given is not None:
        return given
    x_args = context.get_x_argument(as_dictionary=True)
    for key in (name, name.replace("_", "")):
        if key in x_args:
            return parse_boolean(f"-x {key}", x_args[key])
    return default


def resolved_invocation() -> tuple[str, str | None]:
    """For a caller of ``alembic.command`` without atsboost's options: its destination, if it has one."""
    try:
        destination = context.get_revision_argument()
    except KeyError:  # commands without a destination (current, check, revision) do not set one
        return "read", None
    if isinstance(destination, tuple):
        destination = destination[0] if len(destination) == 1 else "heads"
    return "migrate", destination or "base"


def check_x_arguments(extra: Collection[str] = ()) -> None:
    """Refuse an ``alembic -x`` key that nothing reads: a typo would silently change nothing.

    ``extra`` are keys an application's own env.py reads besides atsboost's.
    """
    known = (*X_ARGUMENTS, *extra)
    for key, value in context.get_x_argument(as_dictionary=True).items():
        if key not in known:
            raise MigrationError(
                f"alembic -x {key}={value}: atsboost's env.py reads only -x dry_run=true|false and -x "
                "force=true|false; remove it (timeouts come from MIGRATION_LOCK_TIMEOUT and "
                "MIGRATION_STATEMENT_TIMEOUT), or name the keys your env.py reads in "
                "run_migrations(x_arguments=...)"
            )
        if key in X_ARGUMENTS:
            parse_boolean(f"-x {key}", value)
