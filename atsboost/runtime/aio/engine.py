"""Settings to SQLAlchemy's ``AsyncEngine`` over psycopg's async driver: the sync engine's parameters.

One driver serves both worlds, so ``DATABASE_URL``, SSL, ``application_name``,
``statement_timeout`` (in the transaction's ``BEGIN`` behind a transaction pooler),
keepalives and the pool mean the same here: its size and timeout, the idle timeout,
validation of idle connections, the maximum lifetime, the fair hand-off and leak
detection (``aio.pool``).
"""

from __future__ import annotations

from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from atsboost.config.settings import Settings
from atsboost.runtime.aio.pool import AsyncIdleTimeoutPool
from atsboost.runtime.engine import (
    attach_listeners,
    database_url,
    engine_options,
    log_engine,
    pipeline_begin,
    side_engine_args,
)
from atsboost.runtime.libpq import connect_args
from atsboost.runtime.pool.metrics import pool_name
from atsboost.runtime.poolers import OptionsFallback

try:  # the async modules import SQLAlchemy's asyncio names from here, where a missing extra is explained
    from sqlalchemy.ext.asyncio import AsyncEngine as AsyncEngine
    from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
    from sqlalchemy.ext.asyncio import create_async_engine as sqlalchemy_async_engine
except ImportError as missing:  # SQLAlchemy's asyncio extension needs greenlet
    raise ImportError(
        f"atsboost's asyncio support needs SQLAlchemy's asyncio extension ({missing}); "
        "install it with: pip install 'atsboost[asyncio]'"
    ) from missing


def create_async_engine(settings: Settings) -> AsyncEngine:
    """Build an AsyncEngine for these settings (connects lazily, on first use)."""
    url = database_url(settings)
    options = engine_options(settings)
    options["poolclass"] = AsyncIdleTimeoutPool
    options["connect_args"] = connect_args(settings, asynchronous=True)
    options["metrics_name"] = pool_name(url, asynchronous=True) if settings.runtime.metrics else None
    if settings.runtime.pipeline_begin:
        url = pipeline_begin(url, options, settings)
    engine = sqlalchemy_async_engine(url, **options)
    attach_listeners(engine.sync_engine, settings)
    log_engine("async engine", url, settings)
    return engine


def async_side_engine(
    settings: Settings, url: URL, purpose: str, *, connect_timeout: int | None = None
) -> AsyncEngine:
    """Build an AsyncEngine without a pool, beside the application's (the asyncio health monitor)."""
    args = side_engine_args(settings, url, purpose, connect_timeout=connect_timeout, asynchronous=True)
    engine = sqlalchemy_async_engine(url, poolclass=NullPool, connect_args=args, hide_parameters=True)
    OptionsFallback(settings).install(engine.sync_engine)
    return engine
