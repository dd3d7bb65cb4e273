"""Settings: the environment, read once into a frozen object that everything else receives.

This is the only module that reads ``os.environ``. Bad input fails here, at start-up,
with a message that names the variable, what is wrong with its value and what is
accepted. The database password never appears in a message, a log line or a repr.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from atsboost.config.cpus import usable_cpus
from atsboost.config.environment import Environment as Environment
from atsboost.config.environment import read_environment
from atsboost.config.envvars import EnvironmentVariables
from atsboost.config.migration import MigrationSettings as MigrationSettings
from atsboost.config.migration import load_migration_settings
from atsboost.config.parameters import Parameter, connection_parameters, defaults
from atsboost.config.project import find_project
from atsboost.config.replicas import ReplicaSettings as ReplicaSettings
from atsboost.config.replicas import read_replica_settings
from atsboost.config.roles import RoleNames as RoleNames
from atsboost.config.roles import read_role_names
from atsboost.config.runtime import RuntimeSettings as RuntimeSettings
from atsboost.config.runtime import read_runtime_settings
from atsboost.config.seed import DEFAULT_ADMIN_PASSWORD as DEFAULT_ADMIN_PASSWORD
from atsboost.config.seed import SeedSettings, read_seed_settings
from atsboost.config.sslmode import SSLSettings, resolve_ssl
from atsboost.config.urls import DRIVER as DRIVER
from atsboost.config.urls import ConnectionURL, DatabaseURL, parse_database_url
from atsboost.errors import ConfigurationError

logger = logging.getLogger(__name__)

_MAX_PRODUCTION_POOL = 20


# (pool size, idle timeout in seconds); production's size depends on the CPUs.
_POOL_DEFAULTS = {
    Environment.DEVELOPMENT: (10, 30),
    Environment.TESTING: (5, 10),
    Environment.PRODUCTION: (None, 60),
}


@dataclass(frozen=True)
class PoolSettings:
    """QueuePool limits: at most ``size + max_overflow`` server connections."""

    size: int
    max_overflow: int
    timeout: int
    idle_timeout: int
    size_origin: str
    mode: str = "session"  # "transaction": a transaction pooler (PgBouncer, Supavisor) is in front


@dataclass(frozen=True)
class Settings:
    """Everything atsboost needs to know about the database, fixed at start-up."""

    environment: Environment
    environment_origin: str
    url: ConnectionURL | None
    migration_url: ConnectionURL | None
    ssl: SSLSettings
    pool: PoolSettings
    statement_timeout_ms: int | None
    connect_timeout: int
    application_name: str
    embedded_dir: Path
    migration: MigrationSettings
    seed: SeedSettings
    runtime: RuntimeSettings
    warnings: tuple[str, ...] = ()
    # Secret libpq options from DATABASE_URL's query (sslpassword, ...): never printed.
    connect_secrets: dict[str, str] = field(default_factory=dict, repr=False)
    replicas: ReplicaSettings = field(default_factory=ReplicaSettings)
    roles: RoleNames = field(default_factory=RoleNames)

    @property
    def embedded(self) -> bool:
        """True when no DATABASE_URL is set and the embedded development server is used."""
        return self.url is None

    def with_database(self, raw_url: str, variable: str) -> Settings:
        """Return the same settings aimed at another database (a staging copy, say), given as a URL."""
        url = parse_database_url(raw_url, variable).url
        return dataclasses.replace(self, url=url, migration_url=None, replicas=ReplicaSettings())

    def for_replica(self, url: ConnectionURL) -> Settings:
        """Return these settings aimed at one read replica: its own pool, no migrations, no replicas."""
        return dataclasses.replace(self, url=url, migration_url=None, replicas=ReplicaSettings())

    def connection_parameters(self, url: ConnectionURL | None = None) -> dict[str, Parameter]:
        """Return the libpq parameters of connections to ``url`` (default DATABASE_URL); the URL wins."""
        target = url or self.url
        mine = defaults(
            application_name=self.application_name,
            connect_timeout=self.connect_timeout,
            stall_timeout=self.runtime.stall_timeout,
            statement_timeout_ms=self.statement_timeout_ms,
            transaction_pooler=self.pool.mode == "transaction",
        )
        return connection_parameters(mine, target.parameters if target is not None else {})

    @property
    def masked_url(self) -> str:
        """The database URL with its password replaced by ``***``."""
        if self.url is None:
            return f"embedded PostgreSQL in {self.embedded_dir}"
        return self.url.masked()


@functools.cache
def get_settings() -> Settings:
    """Return the process's settings, read from ``os.environ`` on first use."""
    return load_settings(os.environ)


@functools.cache
def get_migration_settings() -> MigrationSettings:
    """Return the migration settings from ``os.environ``, without needing DATABASE_URL."""
    return load_migration_settings(os.environ)


def read_settings() -> Settings:
    """Read the settings from ``os.environ`` now, uncached: once per command-line invocation."""
    return load_settings(os.environ)


def load_settings(
    environ: Mapping[str, str], *, cpus: int | None = None, cwd: Path | None = None
) -> Settings:
    """Build settings from an environment mapping; ``cpus`` overrides CPU detection.

    ``cwd`` (default: the current directory) locates the project, which anchors the
    embedded server's data folder and the Alembic project.
    """
    env = EnvironmentVariables(environ)
    project = find_project(cwd or Path.cwd())
    environment, environment_origin = read_environment(env)
    warnings: list[str] = []
    parsed = _database_url(env, environment)
    url = parsed.url if parsed is not None else None
    mode = parsed.ssl_mode if parsed is not None else None
    root_cert = parsed.root_cert if parsed is not None else None
    ssl = resolve_ssl(env, environment, url, mode, root_cert, warnings)
    given = url.parameters if url is not None else {}  # the URL's own win (config.parameters)
    connect_timeout = env.integer("DATABASE_CONNECT_TIMEOUT", 10, minimum=1, maximum=3600)
    settings = Settings(
        environment=environment,
        environment_origin=environment_origin,
        url=url,
        connect_secrets=parsed.secrets if parsed is not None else {},
        migration_url=_migration_url(env),
        ssl=ssl,
        pool=_pool(env, environment, cpus),
        statement_timeout_ms=env.integer("DATABASE_STATEMENT_TIMEOUT", None, minimum=0, maximum=86_400_000),
        connect_timeout=int(given.get("connect_timeout") or connect_timeout),
        application_name=given.get("application_name") or _application_name(env),
        embedded_dir=_embedded_dir(env, project.root),
        migration=load_migration_settings(environ, cwd=project.root),
        seed=read_seed_settings(env),
        runtime=read_runtime_settings(env, environment),
        warnings=tuple(warnings),
        replicas=read_replica_settings(env),
        roles=read_role_names(env),
    )
    _refuse_pooler_options(settings)
    for warning in settings.warnings:
        logger.warning("%s", warning)
    return settings


def _refuse_pooler_options(settings: Settings) -> None:
    """Refuse a URL's ``options`` behind a transaction pooler, which rejects that startup parameter."""
    if (
        settings.pool.mode == "transaction"
        and settings.url is not None
        and "options" in settings.url.parameters
    ):
        raise ConfigurationError(
            "DATABASE_URL has options=, but DATABASE_POOL_MODE=transaction says it goes through a "
            "transaction pooler, which refuses that startup parameter; remove options= (atsboost sets "
            "DATABASE_STATEMENT_TIMEOUT in each transaction there instead)"
        )


def _embedded_dir(env: EnvironmentVariables, root: Path) -> Path:
    """Return the embedded server's data folder: ATSBOOST_EMBEDDED_DIR or .atsboost, in the project."""
    return (root / Path(env.text("ATSBOOST_EMBEDDED_DIR") or ".atsboost").expanduser()).resolve()


def production_pool_size(cpus: int) -> int:
    """Return the guide's production pool size: two connections per CPU plus one, at most 20."""
    return min(2 * cpus + 1, _MAX_PRODUCTION_POOL)


def _database_url(env: EnvironmentVariables, environment: Environment) -> DatabaseURL | None:
    """Parse DATABASE_URL; unset is allowed only in development (the embedded server)."""
    raw = env.text("DATABASE_URL")
    if raw is None:
        if environment is not Environment.DEVELOPMENT:
            raise ConfigurationError(
                f"DATABASE_URL is not set; it is required in {environment.value}: set it to "
                "postgresql://USER:PASSWORD@HOST:5432/DBNAME"
            )
        return None
    return parse_database_url(raw, "DATABASE_URL")


def _migration_url(env: EnvironmentVariables) -> ConnectionURL | None:
    """DATABASE_MIGRATION_URL: migrations' connection, as the schema's owner, and direct past a pooler."""
    raw = env.text("DATABASE_MIGRATION_URL")
    return None if raw is None else parse_database_url(raw, "DATABASE_MIGRATION_URL").url


def _pool(env: EnvironmentVariables, environment: Environment, cpus: int | None) -> PoolSettings:
    default_size, idle_timeout = _POOL_DEFAULTS[environment]
    origin = f"{environment.value} default"
    if default_size is None:
        cpus = cpus or usable_cpus()
        default_size = production_pool_size(cpus)
        origin = f"production default: min(2 x {cpus} usable CPUs + 1, {_MAX_PRODUCTION_POOL})"
    size = env.integer("DATABASE_POOL_SIZE", None, minimum=1, maximum=1000)
    return PoolSettings(
        size=size or default_size,
        max_overflow=env.integer("DATABASE_MAX_OVERFLOW", 0, minimum=0, maximum=1000),
        timeout=env.integer("DATABASE_POOL_TIMEOUT", 30, minimum=0, maximum=3600),
        idle_timeout=env.integer("DATABASE_IDLE_TIMEOUT", idle_timeout, minimum=1, maximum=86_400),
        size_origin="DATABASE_POOL_SIZE" if size is not None else origin,
        mode=_pool_mode(env),
    )


def _pool_mode(env: EnvironmentVariables) -> str:
    mode = (env.text("DATABASE_POOL_MODE") or "session").lower()
    if mode not in ("session", "transaction"):
        raise ConfigurationError(
            f"DATABASE_POOL_MODE={mode!r} is not a pool mode; use session (direct to PostgreSQL, or a "
            "session pooler) or transaction (PgBouncer or another pooler in transaction mode)"
        )
    return mode


def _application_name(env: EnvironmentVariables) -> str:
    name = env.text("DATABASE_APPLICATION_NAME") or "atsboost"
    if len(name) > 63 or not name.isascii() or not name.isprintable():
        raise ConfigurationError(
            f"DATABASE_APPLICATION_NAME={name!r} is not usable; PostgreSQL keeps at most 63 "
            "printable ASCII characters, so choose a shorter plain name"
        )
    return name
