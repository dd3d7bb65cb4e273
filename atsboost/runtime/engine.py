"""Turn settings into a SQLAlchemy Engine: one typed translation, one constructor."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import sqlalchemy
import sqlalchemy.exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from atsboost.config.settings import Settings
from atsboost.runtime import embedded, standby, transaction_start
from atsboost.runtime.diagnosis import database_error
from atsboost.runtime.libpq import connect_args, side_args
from atsboost.runtime.pool.metrics import pool_name
from atsboost.runtime.pool.queue import IdleTimeoutQueuePool
from atsboost.runtime.poolers import OptionsFallback

logger = logging.getLogger(__name__)


class EngineOptions(TypedDict):
    """The keyword arguments atsboost passes to ``sqlalchemy.create_engine``."""

    poolclass: type[IdleTimeoutQueuePool]
    pool_size: int
    max_overflow: int
    pool_timeout: float
    pool_use_lifo: bool
    idle_timeout: float
    validate_after: float
    leak_threshold: float | None
    max_lifetime: float | None
    connect_args: dict[str, Any]
    hide_parameters: bool
    metrics_name: NotRequired[str | None]
    transaction_setup: NotRequired[tuple[str, ...]]


def engine_options(settings: Settings) -> EngineOptions:
    """Return the ``create_engine`` arguments for these settings."""
    return EngineOptions(
        poolclass=IdleTimeoutQueuePool,
        pool_size=settings.pool.size,
        max_overflow=settings.pool.max_overflow,
        pool_timeout=settings.pool.timeout,
        pool_use_lifo=True,
        idle_timeout=settings.pool.idle_timeout,
        validate_after=settings.runtime.validate_after,
        leak_threshold=settings.runtime.leak_threshold,
        max_lifetime=settings.runtime.max_lifetime,
        connect_args=connect_args(settings),
        # Bound values (a password hash, a user's data) never appear in an error message or log.
        hide_parameters=True,
    )


def database_url(settings: Settings) -> URL:
    """Return the URL to connect to, starting the embedded server when settings say so."""
    if settings.url is not None:
        return settings.url.sqlalchemy()
    return embedded.ensure_running(settings.embedded_dir)


def create_engine(settings: Settings) -> Engine:
    """Build an Engine for these settings (connects lazily, on first use)."""
    url = database_url(settings)
    options = engine_options(settings)
    options["metrics_name"] = pool_name(url) if settings.runtime.metrics else None
    if settings.runtime.pipeline_begin:
        url = pipeline_begin(url, options, settings)
    engine = sqlalchemy.create_engine(url, **options)
    attach_listeners(engine, settings)
    log_engine("engine", url, settings)
    return engine


def pipeline_begin(url: URL, options: EngineOptions, settings: Settings) -> URL:
    """Send each transaction's BEGIN with its first statement (``runtime.pipeline``).

    The transaction pooler's ``SET LOCAL`` goes in the same pipeline, in place of the
    cursor that would send it with psycopg's own BEGIN.
    """
    from atsboost.runtime import pipeline  # loaded (and its dialect registered) only when asked for

    options["connect_args"].pop("cursor_factory", None)
    options["transaction_setup"] = transaction_start.pooler_setup(settings)
    return pipeline.pipelined(url)


def engine_url(engine: Engine) -> URL:
    """Return the URL an engine was built for, as configured (``pipeline.configured``)."""
    from atsboost.runtime import pipeline

    return pipeline.configured(engine.url)


def attach_listeners(engine: Engine, settings: Settings) -> None:
    """Attach what every application engine listens for, sync or asyncio (its ``sync_engine``).

    A stale primary fenced; ``options`` dropped for a pooler that refuses them (after the
    fence, which narrows the host list); a write refused by a hot standby retried.
    """
    fence_stale_primaries(engine, settings)
    OptionsFallback(settings).install(engine)
    standby.install(engine)


def fence_stale_primaries(engine: Engine, settings: Settings) -> None:
    """With a host list, write only to the primary on the highest timeline (``runtime.fencing``)."""
    from atsboost.runtime import fencing
    from atsboost.runtime.pool.metrics import stats_of

    stats = stats_of(engine.pool)
    fencing.attach(engine, settings, counted=lambda: stats.count("fenced") if stats is not None else None)


def log_engine(kind: str, url: URL, settings: Settings) -> None:
    """Say which database an engine (or async engine) was built for, and its pool, password masked."""
    logger.info(
        "%s for %s: %s environment, pool %d+%d, idle timeout %ss",
        kind,
        url.render_as_string(hide_password=True),
        settings.environment.value,
        settings.pool.size,
        settings.pool.max_overflow,
        settings.pool.idle_timeout,
    )


def side_engine(settings: Settings, url: URL, purpose: str, *, connect_timeout: int | None = None) -> Engine:
    """Build an engine without a pool, beside the application's: migrations, health checks.

    Its connections are ``libpq.side_args``: the application's SSL and timeouts, their own name.
    """
    args = side_engine_args(settings, url, purpose, connect_timeout=connect_timeout)
    engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=args, hide_parameters=True)
    OptionsFallback(settings).install(engine)
    return engine


def side_engine_args(
    settings: Settings,
    url: URL,
    purpose: str,
    *,
    connect_timeout: int | None = None,
    asynchronous: bool = False,
) -> dict[str, Any]:
    """Return the connect_args of a side engine (sync or async) to ``url``."""
    pooled = settings.url is not None and url == settings.url.sqlalchemy()  # a pooler's needs go with it
    direct = settings.migration_url
    own = direct if direct is not None and url == direct.sqlalchemy() else None  # its own URL's parameters
    return side_args(
        settings, purpose, pooled=pooled, connect_timeout=connect_timeout, asynchronous=asynchronous, url=own
    )


@dataclass(frozen=True)
class ServerInfo:
    """What one round trip tells about the server an engine reaches."""

    version: str
    database: str
    user: str
    ssl: bool
    latency_ms: float
    max_connections: int
    reserved_connections: int


def server_info(engine: Engine) -> ServerInfo:
    """Connect once and describe the server; raise DatabaseUnavailableError if unreachable."""
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            row = conn.execute(_SERVER_INFO_SQL).one()
    except sqlalchemy.exc.DBAPIError as exc:
        raise database_error(engine_url(engine), exc) from None
    latency = (time.perf_counter() - started) * 1000
    return ServerInfo(
        row.version,
        row.database,
        row.user,
        bool(row.ssl),
        round(latency, 1),
        row.max_connections,
        row.reserved,
    )


_SERVER_INFO_SQL = sqlalchemy.text(
    "SELECT current_setting('server_version') AS version, current_database() AS database, "
    "current_user AS user, COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), "
    "false) AS ssl, current_setting('max_connections')::int AS max_connections, "
    "current_setting('superuser_reserved_connections')::int "
    "+ COALESCE(current_setting('reserved_connections', true)::int, 0) AS reserved"
)
