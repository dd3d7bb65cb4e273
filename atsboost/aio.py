"""The application's entry points for asyncio code: ``atsboost.db``'s twin, awaited.

These functions are a facade over one default
:class:`~atsboost.runtime.aio.database.AsyncDatabase`, built on SQLAlchemy's asyncio
extension over psycopg's async driver, so the settings, SSL, timeouts and
transaction-pooling mode mean what they mean for the sync engine. Install the extra:
``pip install 'atsboost[asyncio]'``. Importing connects to nothing; ``await
startup()`` prepares the database before the application serves; ``await
shutdown()`` drains it (a FastAPI lifespan, or a worker's SIGTERM handler).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, Unpack

from atsboost import migrations
from atsboost.config.settings import Settings
from atsboost.runtime.aio import database as async_database
from atsboost.runtime.aio import retry as async_retry
from atsboost.runtime.aio.engine import AsyncEngine, AsyncSession, create_async_engine
from atsboost.runtime.retry import TransactionOptions
from atsboost.runtime.shutdown import ShutdownReport

__all__ = [
    "AsyncDatabase",
    "AsyncEngine",
    "AsyncSession",
    "create_async_engine",
    "default",
    "dispose_engine",
    "get_engine",
    "health_state",
    "run_transaction",
    "session_scope",
    "shutdown",
    "startup",
    "transaction",
]

T = TypeVar("T")


class AsyncDatabase(async_database.AsyncDatabase):
    """The runtime's :class:`~atsboost.runtime.aio.database.AsyncDatabase`, migrating before it serves.

    As ``atsboost.db.Database``: ``before_serving=()`` leaves migrations to a deploy step.
    """

    default_before_serving = (migrations.before_serving,)


default = AsyncDatabase()
"""The process-wide database the functions below work on."""


def get_engine() -> AsyncEngine:
    """Return the process-wide AsyncEngine, built on first use from the settings.

    In development without DATABASE_URL the first call starts the embedded server.
    """
    return default.get_engine()


@asynccontextmanager
async def session_scope(
    engine: AsyncEngine | None = None, *, read_only: bool = False
) -> AsyncIterator[AsyncSession]:
    """Yield an AsyncSession that commits when the block succeeds and rolls back when it raises.

    Objects stay loaded after the commit (``expire_on_commit=False``): in asyncio an
    expired attribute cannot load lazily. For work that should survive a failover,
    prefer ``run_transaction``. ``read_only=True`` runs a READ ONLY transaction, on a
    read replica when DATABASE_REPLICA_URLS names a usable one.
    """
    scope = (
        default.session_scope(read_only=read_only)
        if engine is None
        else async_retry.session_scope(engine, read_only=read_only)
    )
    async with scope as session:
        yield session


async def run_transaction(
    fn: Callable[[AsyncSession], Awaitable[T]],
    *,
    engine: AsyncEngine | None = None,
    **options: Unpack[TransactionOptions],
) -> T:
    """Run ``await fn(session)`` in a transaction and commit; on a transient error, run it all again.

    The sync ``run_transaction``'s decisions and options: ``idempotent``,
    ``read_only``, ``isolation_level``, ``attempts`` and ``max_seconds`` (default
    DATABASE_RETRY_ATTEMPTS and DATABASE_RETRY_MAX_SECONDS). ``fn`` must have no side
    effects outside the database (it may run several times).
    """
    return await default.run_transaction(fn, engine=engine, **options)


def transaction(
    *, engine: AsyncEngine | None = None, **options: Unpack[TransactionOptions]
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Decorate ``async fn(session, *args)`` so every call runs through ``run_transaction``."""

    def decorate(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> T:
            return await run_transaction(
                lambda session: fn(session, *args, **kwargs), engine=engine, **options
            )

        return wrapper

    return decorate


async def startup(settings: Settings | None = None) -> AsyncEngine:
    """Prepare the database before the application serves requests, and return the engine.

    As ``atsboost.db.startup``: connects, retrying with backoff for up to
    DATABASE_CONNECT_TIMEOUT in total; applies pending revisions (unless
    DATABASE_MIGRATE_ON_STARTUP=false) in a worker thread, so the loop keeps running;
    starts the health monitor as a task of the loop when configured.
    """
    return await default.startup(settings)


async def health_state() -> dict[str, Any]:
    """Return the database's health as a plain dict, for a readiness endpoint.

    With the monitor running this is its latest state (no query); without it, one
    check runs now.
    """
    return await default.health_state()


async def shutdown(timeout: float = 10.0) -> ShutdownReport | None:
    """Shut the process-wide engine down gracefully; safe to call twice (the second does nothing)."""
    return await default.shutdown(timeout)


async def dispose_engine() -> None:
    """Close the process-wide engine's connections and forget it; the next use rebuilds it."""
    await default.dispose()
