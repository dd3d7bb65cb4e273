"""Whole-transaction retry for asyncio applications: ``await run_transaction(fn, engine=...)``.

The twin of ``runtime.retry`` over SQLAlchemy's asyncio extension, with the same
decisions and counts from the same ``TransactionRun``: what is transient, when a first
failure is retried, the backoff and the wall-clock deadline (run by tenacity's
``AsyncRetrying``), what is counted, and what a failed COMMIT means
(``settle_commit_failure``). So a sync and an async service retry exactly alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import sqlalchemy.exc
from tenacity import AsyncRetrying

from atsboost.runtime.aio.engine import AsyncEngine, AsyncSession
from atsboost.runtime.database_wait import wait_policy
from atsboost.runtime.diagnosis import database_error
from atsboost.runtime.retry import (
    TransactionRun,
    check_pipeline_commit,
    connection_options,
    settle_commit_failure,
)

T = TypeVar("T")


async def run_transaction(
    fn: Callable[[AsyncSession], Awaitable[T]],
    *,
    engine: AsyncEngine,
    idempotent: bool = False,
    attempts: int | None = None,
    max_seconds: float = 15.0,
    isolation_level: str | None = None,
    read_only: bool = False,
    pipeline_commit: bool = False,
    route: Callable[[], AsyncEngine] | None = None,
) -> T:
    """Run ``await fn(session)`` in a transaction and commit; on a transient error, run it all again.

    The options mean what they mean for the sync ``run_transaction``: ``fn`` must
    have no side effects outside the database; ``max_seconds`` is a wall-clock
    deadline; ``idempotent=True`` lets a connection lost during COMMIT be retried;
    ``read_only=True`` makes the server refuse writes, so such a loss loses nothing;
    ``route`` picks each attempt's engine (read replicas); ``pipeline_commit=True``
    sends the INSERTs with the COMMIT.
    """
    if pipeline_commit:
        check_pipeline_commit(engine.dialect)
    run = TransactionRun(
        engine.sync_engine.pool,
        idempotent=idempotent,
        attempts=attempts,
        max_seconds=max_seconds,
        isolation_level=isolation_level,
        read_only=read_only,
        pipeline_commit=pipeline_commit,
    )
    pick = route or (lambda: engine)
    with run.counted():
        try:  # the first attempt runs bare, as in the sync loop
            return await _attempt(fn, pick(), run)
        except Exception as exc:
            if not run.retries(exc):
                raise
        async for attempt in AsyncRetrying(**run.policy()):
            with attempt:
                run.replay_first_failure()
                result = await _attempt(fn, pick(), run)
        return result


async def _attempt(fn: Callable[[AsyncSession], Awaitable[T]], engine: AsyncEngine, run: TransactionRun) -> T:
    async with AsyncSession(engine, expire_on_commit=False, autoflush=not run.read_only) as session:
        if run.options:
            await session.connection(execution_options=run.options)
        result = await fn(session)
        try:
            await session.commit()
        except sqlalchemy.exc.DBAPIError as exc:
            settle_commit_failure(exc, read_only=run.read_only, idempotent=run.idempotent)
    return result


@asynccontextmanager
async def session_scope(engine: AsyncEngine, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
    """Yield an AsyncSession that commits when the block succeeds and rolls back when it raises.

    Objects stay loaded after the commit (``expire_on_commit=False``): in asyncio an
    expired attribute cannot be loaded lazily, so this is the only safe default.
    """
    async with AsyncSession(engine, expire_on_commit=False) as session:
        if read_only:
            await session.connection(execution_options=connection_options(None, read_only=True))
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


async def wait_for_database(engine: AsyncEngine, *, seconds: float) -> None:
    """Connect, retrying transient failures with backoff for up to ``seconds`` in total.

    The sync ``wait_for_database`` on the event loop: the same policy, the same
    DatabaseUnavailableError (the masked URL and the last reason) past the budget.
    """
    try:
        async for attempt in AsyncRetrying(**wait_policy(seconds)):
            with attempt:
                async with engine.connect() as conn:
                    await conn.exec_driver_sql("SELECT 1")
    except sqlalchemy.exc.DBAPIError as exc:
        raise database_error(engine.url, exc) from None
