"""FastAPI: the database ready before the first request, sessions that commit before the response.

    from fastapi import FastAPI
    from atsboost.integrations.fastapi import AsyncSessionDep, exception_handlers, health_router, lifespan

    app = FastAPI(lifespan=lifespan, exception_handlers=exception_handlers())
    app.include_router(health_router())


    @app.post("/plans/{code}", status_code=201)
    async def create_plan(code: str, session: AsyncSessionDep): ...

The session dependencies run with ``scope="function"`` (FastAPI 0.121 and later): their
exit, and so the COMMIT, runs before the response is sent, and a COMMIT that fails
answers a 5xx, never a 200 for a row that was not saved. uvicorn handles SIGTERM and
SIGINT and then runs the lifespan's shutdown, so no signal handler is installed here.
Install the extra: ``pip install 'atsboost[fastapi]'``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar, Unpack

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from atsboost import aio, db
from atsboost.aio import AsyncSession
from atsboost.errors import TransactionOutcomeUnknownError
from atsboost.runtime.retry import TransactionOptions

__all__ = [
    "AsyncSessionDep",
    "AsyncTransaction",
    "AsyncTransactionDep",
    "Lifespan",
    "SessionDep",
    "Transaction",
    "TransactionDep",
    "async_session",
    "exception_handlers",
    "health_router",
    "lifespan",
    "session",
    "sync_lifespan",
]

T = TypeVar("T")
Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]


class Lifespan:
    """``FastAPI(lifespan=...)``: start the database before serving, shut it down after.

    ``asyncio`` starts ``atsboost.aio``'s database (async routes), ``sync`` starts
    ``atsboost.db``'s in the thread pool (``def`` routes); an app with both kinds turns on
    both. ``database`` and ``async_database`` name other databases than the process-wide ones.
    """

    def __init__(  # noqa: PLR0913 (each a keyword with its default)
        self,
        *,
        asyncio: bool = True,
        sync: bool = False,
        shutdown_timeout: float = 10.0,
        database: db.Database | None = None,
        async_database: aio.AsyncDatabase | None = None,
    ) -> None:
        self.asyncio, self.sync, self.shutdown_timeout = asyncio, sync, shutdown_timeout
        self.database = database
        self.async_database = async_database

    @asynccontextmanager
    async def __call__(self, app: FastAPI) -> AsyncIterator[None]:
        """Wait for the database, migrate and start the monitor; afterwards drain and close."""
        database = self.database or db.default
        async_database = self.async_database or aio.default
        if self.sync:
            await run_in_threadpool(database.startup)  # blocking work stays off the event loop
        if self.asyncio:
            await async_database.startup()
        try:
            yield
        finally:
            if self.asyncio:
                await async_database.shutdown(timeout=self.shutdown_timeout)
            if self.sync:
                await run_in_threadpool(database.shutdown, self.shutdown_timeout)


lifespan = Lifespan()
"""The lifespan of an app with ``async def`` routes (``atsboost.aio``)."""

sync_lifespan = Lifespan(asyncio=False, sync=True)
"""The lifespan of an app with ``def`` routes (``atsboost.db``)."""


async def async_session() -> AsyncIterator[AsyncSession]:
    """Yield an AsyncSession that commits when the route returns, or rolls back when it raises."""
    async with aio.session_scope() as scoped:
        yield scoped


def session() -> Iterator[Session]:
    """Yield a Session that commits when the route returns, or rolls back when it raises."""
    with db.session_scope() as scoped:
        yield scoped


AsyncSessionDep = Annotated[AsyncSession, Depends(async_session, scope="function")]
"""An AsyncSession per request, committed before the response is sent."""

SessionDep = Annotated[Session, Depends(session, scope="function")]
"""A Session per request (``def`` routes), committed before the response is sent."""


class AsyncTransaction:
    """Run a write through ``atsboost.aio.run_transaction``: the whole transaction retried on failover."""

    async def __call__(
        self, fn: Callable[[AsyncSession], Awaitable[T]], **options: Unpack[TransactionOptions]
    ) -> T:
        """Run ``await fn(session)`` in a transaction and commit, running it again on a transient error."""
        return await aio.run_transaction(fn, **options)


class Transaction:
    """Run a write through ``atsboost.db.run_transaction`` (``def`` routes)."""

    def __call__(self, fn: Callable[[Session], T], **options: Unpack[TransactionOptions]) -> T:
        """Run ``fn(session)`` in a transaction and commit, running it again on a transient error."""
        return db.run_transaction(fn, **options)


AsyncTransactionDep = Annotated[AsyncTransaction, Depends(AsyncTransaction)]
"""A runner of retried transactions for writes; a test may override it (``app.dependency_overrides``)."""

TransactionDep = Annotated[Transaction, Depends(Transaction)]
"""The same for ``def`` routes."""


def health_router(*, sync: bool = False, prefix: str = "") -> APIRouter:
    """Return ``/healthz`` (the process serves) and ``/readyz`` (``health_state()``; 503 when down).

    ``sync``: read ``atsboost.db``'s state (``def`` apps) rather than ``atsboost.aio``'s.
    """
    router = APIRouter(prefix=prefix, tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        state = await (run_in_threadpool(db.health_state) if sync else aio.health_state())
        return JSONResponse(state, status_code=503 if state["status"] == "down" else 200)

    return router


def exception_handlers() -> dict[int | type[Exception], Handler]:
    """Return ``FastAPI(exception_handlers=...)`` for the database's failures, each a 5xx with a reason.

    A database that cannot answer now (SQLAlchemy's ``OperationalError``: unreachable, a
    connection lost, the server shutting down, a statement timeout; atsboost's
    ``DatabaseUnavailableError`` is one) is 503 with ``Retry-After``, once
    ``run_transaction``'s own retries are spent; a COMMIT whose outcome is unknown is
    500 and says so. Anything else keeps FastAPI's own 500.
    """
    return {
        OperationalError: _unavailable,
        TransactionOutcomeUnknownError: _outcome_unknown,
    }


async def _unavailable(request: Request, exc: Exception) -> Response:
    detail = "the database cannot answer now; try again shortly"
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})


async def _outcome_unknown(request: Request, exc: Exception) -> Response:
    detail = "the connection broke during COMMIT: the change may or may not have been saved"
    return JSONResponse({"detail": detail}, status_code=500)
