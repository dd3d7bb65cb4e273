"""Migrations as library calls: upgrade, downgrade, status, create and merge.

Each call runs Alembic's own command API against the project's ``env.py``, so the
CLI, ``atsboost.db.startup()`` and a plain ``alembic upgrade heads`` get the same
lock, gate, timeouts and dry run. Alembic keeps state in module globals, so run
one of these at a time per process (the advisory lock covers other processes).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine

from atsboost.config.settings import Settings, get_settings
from atsboost.errors import AtsboostError, MigrationError
from atsboost.migrations import revisions
from atsboost.migrations.options import MigrationOptions, MigrationResult, Revision
from atsboost.migrations.plan import plan
from atsboost.migrations.project import alembic_config, is_packaged
from atsboost.migrations.session import migration_engine
from atsboost.runtime.diagnosis import database_error

_NAME = re.compile(r"[A-Za-z0-9_-]+")


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


def upgrade(
    settings: Settings | None = None,
    *,
    revision: str = "heads",
    dry_run: bool | None = None,
    force: bool | None = None,
    connection: Connection | Engine | None = None,
    output: TextIO | None = None,
) -> MigrationResult:
    """Apply pending revisions up to ``revision`` (by default every branch's head).

    With ``dry_run=True`` print the pending revisions and their SQL instead. Flags
    left None defer to the environment (MIGRATION_DRYRUN, MIGRATION_FORCE).
    """
    options = MigrationOptions("upgrade", revision, settings, connection, dry_run, force)
    _run(command.upgrade, alembic_config(settings, options, output=output), revision)
    return options.result


def downgrade(
    settings: Settings | None = None,
    *,
    revision: str,
    dry_run: bool | None = None,
    force: bool | None = None,
    allow_data_loss: bool = False,
    connection: Connection | Engine | None = None,
    output: TextIO | None = None,
) -> MigrationResult:
    """Revert revisions down to ``revision``.

    In production only with ``force=True`` (the environment's MIGRATION_FORCE does not
    count), and, when it drops tables holding rows or goes to base, ``allow_data_loss=True``.
    """
    options = MigrationOptions(
        "downgrade", revision, settings, connection, dry_run, force, allow_data_loss=allow_data_loss
    )
    _run(command.downgrade, alembic_config(settings, options, output=output), revision)
    return options.result


def status(settings: Settings | None = None) -> MigrationStatus:
    """Read the current revision (read-only: no lock, no version table created) and what is pending."""
    script = ScriptDirectory.from_config(alembic_config(settings))
    engine = migration_engine(settings or get_settings())
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_heads()
    except sqlalchemy.exc.DBAPIError as exc:
        raise database_error(engine.url, exc) from None
    finally:
        engine.dispose()
    try:
        _, pending = plan("upgrade", "heads", current, scripts=script)
    except MigrationError as exc:
        raise MigrationError(
            f"the database is at {', '.join(current)}, which this code does not know ({exc}); "
            "it was migrated by a newer release: deploy that release, or downgrade with it first"
        ) from None
    return MigrationStatus(current, tuple(script.get_heads()), pending)


def create(name: str, *, autogenerate: bool = False, settings: Settings | None = None) -> Path:
    """Write a new timestamped revision in the project's own versions folder; return its path."""
    if not _NAME.fullmatch(name):
        raise MigrationError(
            f"migration name {name!r} is not allowed: use only letters, digits, '_' and '-' "
            "(e.g. add_resume_table)"
        )
    config = _own_project(settings, MigrationOptions("revision", settings=settings, skip_empty=autogenerate))
    try:
        script = _run(command.revision, config, message=name, autogenerate=autogenerate)
    except MigrationError as exc:
        if "Target database is not up to date" not in str(exc):
            raise
        raise MigrationError(
            "autogenerate compares the models with an up-to-date database, and this one has revisions "
            "pending: run `atsboost-db migrate` first, then create the revision again"
        ) from None
    if isinstance(script, list):
        script = script[0] if script else None
    if script is None:
        raise MigrationError("the models match the database: autogenerate found nothing to write")
    return Path(script.path)


def merge(settings: Settings | None = None, *, message: str = "merge heads") -> Path:
    """Join the project's own heads (revisions written in parallel) with a merge revision; return its path."""
    config = _own_project(settings, MigrationOptions("merge", settings=settings))
    heads = revisions.own_heads(ScriptDirectory.from_config(config))
    if len(heads) < 2:
        raise MigrationError(
            f"nothing to merge: your revisions have {len(heads)} head(s); merge joins two or more"
        )
    script: Script | None = _run(command.merge, config, [h.revision for h in heads], message=message)
    if script is None:
        raise MigrationError("Alembic wrote no merge revision")
    return Path(script.path)


def _own_project(settings: Settings | None, options: MigrationOptions) -> Config:
    config = alembic_config(settings, options)
    if is_packaged(config):
        raise MigrationError(
            "there is no Alembic project here (no alembic.ini in this folder or above it, and "
            "ATSBOOST_ALEMBIC_INI is unset); create one with `atsboost-db migrate init`, then run this "
            "from its folder"
        )
    return config


def _run(fn: Callable[..., Any], config: Config, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(config, *args, **kwargs)
    except CommandError as exc:
        if isinstance(exc.__cause__, AtsboostError):
            raise exc.__cause__ from None  # env.py's own error, typed (e.g. MigrationRefusedError)
        raise MigrationError(f"{exc}") from None
