"""Migrations as library calls: upgrade, downgrade, status and create.

Each call runs Alembic's own command API against ``alembic/env.py``, so the CLI,
``atsboost.db.startup()`` and a plain ``alembic upgrade head`` get the same
lock, gate, timeouts and dry run. Alembic keeps state in module globals, so run
one of these at a time per process (the advisory lock covers other processes).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from atsboost.config.settings import Settings, get_migration_settings, get_settings
from atsboost.errors import AtsboostError, MigrationError
from atsboost.migrations import environment as migration_env
from atsboost.migrations import session as migration_session
from atsboost.migrations.environment import MigrationResult, Revision
from atsboost.runtime.engine import unavailable

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"
_NAME = re.compile(r"[A-Za-z0-9_-]+")

__all__ = [
    "MigrationResult",
    "MigrationStatus",
    "Revision",
    "alembic_config",
    "create",
    "downgrade",
    "status",
    "upgrade",
]


@dataclass(frozen=True)
class MigrationStatus:
    """Where the database stands against the code's revisions."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: list[Revision]

    @property
    def up_to_date(self) -> bool:
        """True when no revision is pending."""
        return not self.pending


def alembic_config(
    settings: Settings | None = None,
    *,
    connection: Any = None,
    dry_run: bool | None = None,
    force: bool | None = None,
    output: TextIO | None = None,
) -> Config:
    """Return an Alembic Config for atsboost's migrations; None flags defer to the environment.

    The project's alembic.ini is used, or the one ATSBOOST_ALEMBIC_INI names.
    """
    migration = settings.migration if settings is not None else get_migration_settings()
    ini = migration.alembic_ini or ALEMBIC_INI
    if not ini.is_file():
        raise MigrationError(
            f"cannot find {ini}: run atsboost from a checkout of the project (pip install -e .), "
            "where alembic.ini and alembic/ live, or set ATSBOOST_ALEMBIC_INI"
        )
    config = Config(str(ini), stdout=output or sys.stdout, output_buffer=output)
    attributes = {
        migration_session.SETTINGS: settings,
        "connection": connection,
        migration_env.DRY_RUN: dry_run,
        migration_env.FORCE: force,
    }
    config.attributes.update({k: v for k, v in attributes.items() if v is not None})
    return config


def upgrade(settings: Settings | None = None, *, revision: str = "head", **flags: Any) -> MigrationResult:
    """Apply pending revisions up to ``revision`` (or, with ``dry_run=True``, print their SQL)."""
    config = alembic_config(settings, **flags)
    _run(command.upgrade, config, revision)
    return _result(config)


def downgrade(settings: Settings | None = None, *, revision: str, **flags: Any) -> MigrationResult:
    """Revert revisions down to ``revision`` (in production only with ``force=True``)."""
    config = alembic_config(settings, **flags)
    _run(command.downgrade, config, revision)
    return _result(config)


def status(settings: Settings | None = None) -> MigrationStatus:
    """Read the current revision (read-only: no lock, no version table created) and what is pending."""
    config = alembic_config(settings)
    script = ScriptDirectory.from_config(config)
    engine = migration_session.migration_engine(settings or get_settings())
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_heads()
    except sqlalchemy.exc.DBAPIError as exc:
        raise unavailable(engine.url, exc) from None
    finally:
        engine.dispose()
    try:
        pending = [
            Revision(s.revision, s.doc or "")
            for s in reversed(list(script.iterate_revisions("heads", current or "base")))
            if s.revision not in current
        ]
    except CommandError as exc:
        raise MigrationError(
            f"the database is at {', '.join(current)}, which this code does not know ({exc}); "
            "it was migrated by a newer release: deploy that release, or downgrade with it first"
        ) from None
    return MigrationStatus(current, tuple(script.get_heads()), pending)


def create(name: str, *, autogenerate: bool = False, settings: Settings | None = None) -> Path:
    """Write a new timestamped revision file and return its path."""
    if not _NAME.fullmatch(name):
        raise MigrationError(
            f"migration name {name!r} is not allowed: use only letters, digits, '_' and '-' "
            "(e.g. add_resume_table)"
        )
    config = alembic_config(settings)
    config.attributes[migration_env.AUTOGENERATE] = autogenerate
    script = _run(command.revision, config, message=name, autogenerate=autogenerate)
    if isinstance(script, list):
        script = script[0] if script else None
    if script is None:
        raise MigrationError("the models match the database: autogenerate found nothing to write")
    return Path(script.path)


def _run(fn: Any, config: Config, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(config, *args, **kwargs)
    except CommandError as exc:
        if isinstance(exc.__cause__, AtsboostError):
            raise exc.__cause__ from None  # env.py's own error, typed (e.g. MigrationRefusedError)
        raise MigrationError(f"{exc}") from None


def _result(config: Config) -> MigrationResult:
    result = config.attributes.get(migration_env.RESULT)
    return result if isinstance(result, MigrationResult) else MigrationResult()
