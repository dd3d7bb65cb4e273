"""How migrations run: readable without DATABASE_URL, since offline SQL needs no database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from atsboost.config.environment import Environment, read_environment
from atsboost.config.envvars import EnvironmentVariables
from atsboost.config.project import find_project
from atsboost.errors import ConfigurationError


@dataclass(frozen=True)
class MigrationSettings:
    """How migrations run; readable without DATABASE_URL (offline SQL needs no database)."""

    environment: Environment
    dry_run: bool
    force: bool
    require_force: bool
    lock_timeout: float
    statement_timeout: float
    lock_wait: float
    lock_retries: int
    on_startup: bool
    alembic_ini: Path | None = None
    lint: str = "warn"  # MIGRATION_LINT: error (refuse), warn (log) or off


def load_migration_settings(environ: Mapping[str, str], *, cwd: Path | None = None) -> MigrationSettings:
    """Read the migration variables (MIGRATION_*, DATABASE_MIGRATE_ON_STARTUP) and find the project.

    The Alembic project is ATSBOOST_ALEMBIC_INI, else the ``alembic.ini`` found upward
    from ``cwd`` (the current directory), else atsboost's packaged migrations (None).
    """
    env = EnvironmentVariables(environ)
    environment = read_environment(env)[0]
    return MigrationSettings(
        environment=environment,
        dry_run=env.boolean("MIGRATION_DRYRUN", default=False),
        force=env.boolean("MIGRATION_FORCE", default=False),
        require_force=env.boolean("MIGRATION_REQUIRE_FORCE", default=False),
        lock_timeout=env.seconds("MIGRATION_LOCK_TIMEOUT", 5.0, minimum=0.01),
        statement_timeout=env.seconds("MIGRATION_STATEMENT_TIMEOUT", 3600.0, minimum=0.01),
        lock_wait=env.seconds("MIGRATION_LOCK_WAIT", 300.0, minimum=0.0),
        lock_retries=env.integer("MIGRATION_LOCK_RETRIES", 3, minimum=0, maximum=100),
        on_startup=env.boolean("DATABASE_MIGRATE_ON_STARTUP", default=True),
        alembic_ini=_alembic_ini(env) or find_project(cwd or Path.cwd()).alembic_ini,
        lint=_lint_mode(env, environment),
    )


def _alembic_ini(env: EnvironmentVariables) -> Path | None:
    value = env.text("ATSBOOST_ALEMBIC_INI")
    if value is None:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise ConfigurationError(
            f"ATSBOOST_ALEMBIC_INI names {value!r}, which is not a file; "
            "point it at your alembic.ini, or unset it"
        )
    return path


def _lint_mode(env: EnvironmentVariables, environment: Environment) -> str:
    """MIGRATION_LINT: error (refuse to migrate), warn (log) or off; error by default in production."""
    default = "error" if environment is Environment.PRODUCTION else "warn"
    mode = (env.text("MIGRATION_LINT") or default).lower()
    if mode not in ("error", "warn", "off"):
        raise ConfigurationError(
            f"MIGRATION_LINT={mode!r} is not a lint mode; use error (refuse to migrate), warn or off"
        )
    return mode
