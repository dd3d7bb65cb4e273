"""Send a transaction's BEGIN with its first statement: one round trip fewer per transaction.

psycopg opens a transaction by sending ``BEGIN`` and waiting for the answer before it
sends the first statement: a transaction of one statement takes three round trips
(``BEGIN``, the statement, ``COMMIT``). Here the psycopg connection stays in
autocommit mode, and SQLAlchemy's transactions are opened by this dialect: its
``do_begin`` only notes the ``BEGIN`` (with the isolation level, READ ONLY and
DEFERRABLE SQLAlchemy asked for, and the transaction pooler's ``SET LOCAL``), and the
connection's cursor sends it in psycopg's pipeline with the first statement, both in
one round trip. The pipeline ends inside ``execute``, so the statement's rows, row
count and error are there when SQLAlchemy looks, as without it. ``COMMIT`` and
``ROLLBACK`` are psycopg's: it sends them whenever the server reports a transaction
open, autocommit or not.

Public APIs only: SQLAlchemy's documented dialect hooks, on dialects registered under
their own name (``postgresql+atsboost_pipeline``, sync and asyncio), over psycopg's
``cursor_factory`` and ``pipeline()``. A server-side cursor cannot run in a pipeline:
its ``BEGIN`` goes on its own, as without this module. The sync and asyncio cursors
differ only by ``await``; every decision is in ``_take`` and ``_Transactions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg, PGDialectAsync_psycopg
from sqlalchemy.engine import URL
from sqlalchemy.engine.characteristics import ConnectionCharacteristic

from atsboost.runtime.transaction_start import PIPELINE_STATE as _STATE
from atsboost.runtime.transaction_start import begin_statement

DRIVER = "atsboost_pipeline"
PIPELINE_COMMIT = (
    "atsboost_pipeline_commit"  # the execution option run_transaction(pipeline_commit=True) sets
)


def pipelined(url: URL) -> URL:
    """Return ``url`` with this module's dialect as its driver."""
    return url.set(drivername=f"postgresql+{DRIVER}")


def configured(url: URL) -> URL:
    """Return ``url`` as configured: psycopg's driver name where this dialect's stands.

    What is shown (reports, errors) and what side engines connect with is the URL
    the user gave, whichever dialect the application's engine runs on.
    """
    return url.set(drivername="postgresql+psycopg") if url.drivername == f"postgresql+{DRIVER}" else url


@dataclass
class _State:
    """One connection's transactions: SQLAlchemy's isolation level, and what waits to be sent."""

    isolation: str | None = None  # None: the server's default; "AUTOCOMMIT": no BEGIN at all
    pending: tuple[str, ...] = ()
    defer_writes: bool = False  # pipeline_commit: INSERTs wait to go with COMMIT
    queue: Any = None  # the pipeline holding them, entered and not yet ended


def _state(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> _State:
    return getattr(conn, _STATE)  # type: ignore[no-any-return]


def _take(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> tuple[str, ...]:
    """Return the commands to send before the next statement, and forget them.

    Nothing (an empty tuple) when the server already has a transaction open (psycopg's ``transaction()``
    on the same connection sent its own BEGIN).
    """
    state = _state(conn)
    commands, state.pending = state.pending, ()
    if commands and conn.info.transaction_status != pq.TransactionStatus.IDLE:
        return ()
    return commands


def _implicit(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> tuple[str, ...]:
    """Return the BEGIN psycopg would send before a server-side cursor outside any transaction."""
    state = _state(conn)
    idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
    return (begin_statement(conn, state.isolation),) if idle and state.isolation != "AUTOCOMMIT" else ()


def _deferrable(query: Any) -> bool:
    """Tell whether a statement may wait for COMMIT: an INSERT whose rows nobody reads back.

    UPDATE and DELETE are sent at once: the ORM compares their row counts with what it expected.
    """
    return (
        isinstance(query, str) and query.lstrip()[:6].upper() == "INSERT" and "RETURNING" not in query.upper()
    )


def _ending(query: Any) -> str | None:
    return (
        query if query in ("COMMIT", "ROLLBACK") else None
    )  # as the dialect's do_commit/do_rollback send them


def _failed(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    return conn.info.transaction_status == pq.TransactionStatus.INERROR


class PipelinedCursor(psycopg.Cursor[Any]):
    """A cursor that sends a pending BEGIN in the same pipeline as its statement."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:  # noqa: D102
        state = _state(self.connection)
        if state.queue is not None or (state.defer_writes and _deferrable(query)):
            return self._queued(state, query, params, **kwargs)
        commands = _take(self.connection)
        if not commands:
            return super().execute(query, params, **kwargs)
        with self.connection.pipeline():
            for command in commands:
                super().execute(command)
            return super().execute(query, params, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:  # noqa: D102
        _end_queue(self.connection)
        for command in _take(self.connection):  # executemany is a pipeline of its own
            super().execute(command)
        super().executemany(query, params_seq, **kwargs)

    def _queued(self, state: _State, query: Any, params: Any, **kwargs: Any) -> Any:
        """pipeline_commit: queue a write unanswered; any other statement (COMMIT too) ends the queue."""
        if state.queue is None:
            state.queue = self.connection.pipeline()
            state.queue.__enter__()
        for command in _take(self.connection):
            super().execute(command)
        if state.defer_writes and _deferrable(query):
            return super().execute(query, params, **kwargs)
        try:
            super().execute(query, params, **kwargs)
        except psycopg.Error:  # a queued write's error, read early: raised, not the aborted pipeline's
            _end_queue(self.connection, _ending(query), raising=False)
            raise
        _end_queue(self.connection, _ending(query))
        return self


def _end_queue(conn: psycopg.Connection[Any], ending: str | None = None, *, raising: bool = True) -> None:
    """Send what is queued with a Sync and read every answer: the first queued error is raised here.

    ``ending`` (COMMIT, ROLLBACK) ends the transaction: after a queued error the
    server skipped it, so the transaction is rolled back here, as a COMMIT of a
    failed transaction would have done; the error is raised unless rolling back, or
    unless the caller is raising the queued error already (``raising=False``).
    """
    state = _state(conn)
    queue, state.queue = state.queue, None
    if queue is None:
        return
    try:
        queue.__exit__(None, None, None)
    except psycopg.Error:
        if ending and _failed(conn):
            conn.rollback()  # a queued write failed, so the COMMIT or ROLLBACK after it was skipped
        if raising and ending != "ROLLBACK":
            raise


class AsyncPipelinedCursor(psycopg.AsyncCursor[Any]):
    """``PipelinedCursor`` for psycopg's AsyncConnection."""

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:  # noqa: D102
        state = _state(self.connection)
        if state.queue is not None or (state.defer_writes and _deferrable(query)):
            return await self._queued(state, query, params, **kwargs)
        commands = _take(self.connection)
        if not commands:
            return await super().execute(query, params, **kwargs)
        async with self.connection.pipeline():
            for command in commands:
                await super().execute(command)
            return await super().execute(query, params, **kwargs)

    async def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:  # noqa: D102
        await _end_queue_async(self.connection)
        for command in _take(self.connection):
            await super().execute(command)
        await super().executemany(query, params_seq, **kwargs)

    async def _queued(self, state: _State, query: Any, params: Any, **kwargs: Any) -> Any:
        if state.queue is None:
            state.queue = self.connection.pipeline()
            await state.queue.__aenter__()
        for command in _take(self.connection):
            await super().execute(command)
        if state.defer_writes and _deferrable(query):
            return await super().execute(query, params, **kwargs)
        try:
            await super().execute(query, params, **kwargs)
        except psycopg.Error:
            await _end_queue_async(self.connection, _ending(query), raising=False)
            raise
        await _end_queue_async(self.connection, _ending(query))
        return self


async def _end_queue_async(
    conn: psycopg.AsyncConnection[Any], ending: str | None = None, *, raising: bool = True
) -> None:
    """``_end_queue`` for an AsyncConnection."""
    state = _state(conn)
    queue, state.queue = state.queue, None
    if queue is None:
        return
    try:
        await queue.__aexit__(None, None, None)
    except psycopg.Error:
        if ending and _failed(conn):
            await conn.rollback()
        if raising and ending != "ROLLBACK":
            raise


class PipelinedServerCursor(psycopg.ServerCursor[Any]):
    """A server-side cursor: what is queued, then BEGIN if any is due, each on its own first."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:  # noqa: D102
        _end_queue(self.connection)
        for command in _take(self.connection) or _implicit(self.connection):
            self.connection.execute(command)
        return super().execute(query, params, **kwargs)


class AsyncPipelinedServerCursor(psycopg.AsyncServerCursor[Any]):
    """``PipelinedServerCursor`` for psycopg's AsyncConnection."""

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:  # noqa: D102
        await _end_queue_async(self.connection)
        for command in _take(self.connection) or _implicit(self.connection):
            await self.connection.execute(command)
        return await super().execute(query, params, **kwargs)


class _PipelineCommit(ConnectionCharacteristic):
    """The execution option ``atsboost_pipeline_commit``: writes wait for COMMIT's round trip.

    Transactional, as ``postgresql_readonly``: set before a transaction's first
    statement, reset when the connection goes back to the pool.
    """

    transactional = True

    def reset_characteristic(self, dialect: Any, dbapi_conn: Any) -> None:  # noqa: D102
        _state(dialect.driver_of(dbapi_conn)).defer_writes = False

    def set_characteristic(self, dialect: Any, dbapi_conn: Any, value: Any) -> None:  # noqa: D102
        _state(dialect.driver_of(dbapi_conn)).defer_writes = bool(value)

    def get_characteristic(self, dialect: Any, dbapi_conn: Any) -> Any:  # noqa: D102
        return _state(dialect.driver_of(dbapi_conn)).defer_writes


class _Transactions:
    """The dialect hooks both dialects share: SQLAlchemy's transactions, opened by the cursor."""

    transaction_setup: tuple[str, ...] = ()
    cursors: tuple[type[Any], type[Any]] = (PipelinedCursor, PipelinedServerCursor)
    connection_characteristics = PGDialect_psycopg.connection_characteristics.union(
        {PIPELINE_COMMIT: _PipelineCommit()}
    )

    def __init__(self, transaction_setup: tuple[str, ...] = (), **kwargs: Any) -> None:
        """``transaction_setup``: statements every transaction starts with (``SET LOCAL ...``)."""
        super().__init__(**kwargs)
        self.transaction_setup = tuple(transaction_setup)

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        """Connect in autocommit mode: psycopg then never sends a BEGIN of its own."""
        cursor, server_cursor = self.cursors
        adapted = super().connect(*cargs, **{**cparams, "autocommit": True, "cursor_factory": cursor})  # type: ignore[misc]
        driver = self.get_driver_connection(adapted)  # type: ignore[attr-defined]
        driver.server_cursor_factory = server_cursor
        setattr(driver, _STATE, _State())
        return adapted

    def do_begin(self, dbapi_connection: Any) -> None:
        """Note BEGIN (and the setup) to go with the next statement; nothing is sent yet."""
        driver = self.driver_of(dbapi_connection)
        state = _state(driver)
        if state.isolation != "AUTOCOMMIT":
            state.pending = (begin_statement(driver, state.isolation), *self.transaction_setup)

    def do_commit(self, dbapi_connection: Any) -> None:
        """Commit what the server has open; a transaction that ran no statement sent nothing.

        Queued writes go with the COMMIT, in its round trip, through the cursor.
        """
        self._end(dbapi_connection, "COMMIT")

    def do_rollback(self, dbapi_connection: Any) -> None:
        """Roll back what the server has open, and forget a BEGIN and writes not yet sent."""
        self._end(dbapi_connection, "ROLLBACK")

    def _end(self, dbapi_connection: Any, command: str) -> None:
        state = _state(self.driver_of(dbapi_connection))
        state.pending = ()
        if state.queue is None:
            (dbapi_connection.commit if command == "COMMIT" else dbapi_connection.rollback)()
            return
        cursor = dbapi_connection.cursor()  # SQLAlchemy's asyncio adapter awaits the cursor
        try:
            cursor.execute(command)
        finally:
            cursor.close()

    def set_isolation_level(self, dbapi_connection: Any, level: str) -> None:
        """Keep the level for the next BEGIN; AUTOCOMMIT means no BEGIN at all."""
        _state(self.driver_of(dbapi_connection)).isolation = level

    def get_isolation_level(self, dbapi_connection: Any) -> Any:
        """Return the level the next BEGIN asks for, or the server's default."""
        level = _state(self.driver_of(dbapi_connection)).isolation
        return level if level is not None else super().get_isolation_level(dbapi_connection)  # type: ignore[misc]

    def detect_autocommit_setting(self, dbapi_conn: Any) -> bool:
        """Return whether SQLAlchemy's AUTOCOMMIT level is set (psycopg's own flag is always on)."""
        return _state(self.driver_of(dbapi_conn)).isolation == "AUTOCOMMIT"

    def driver_of(self, dbapi_connection: Any) -> Any:
        """Return the psycopg connection behind a pool proxy (``driver_connection``) or an adapter."""
        proxied = getattr(dbapi_connection, "driver_connection", None)
        return proxied if proxied is not None else self.get_driver_connection(dbapi_connection)  # type: ignore[attr-defined]


class PipelinedDialect(_Transactions, PGDialect_psycopg):
    """SQLAlchemy's psycopg dialect, with BEGIN sent in the first statement's round trip."""

    supports_statement_cache = True  # SQLAlchemy reads this from the class's own namespace

    @classmethod
    def get_async_dialect_cls(cls, url: URL) -> Any:
        """``create_async_engine`` on this URL gets the asyncio twin."""
        return AsyncPipelinedDialect


class AsyncPipelinedDialect(_Transactions, PGDialectAsync_psycopg):
    """SQLAlchemy's asyncio psycopg dialect, with BEGIN sent in the first statement's round trip."""

    supports_statement_cache = True
    cursors = (AsyncPipelinedCursor, AsyncPipelinedServerCursor)


registry.register(f"postgresql.{DRIVER}", __name__, "PipelinedDialect")
registry.register(f"postgresql.{DRIVER}_async", __name__, "AsyncPipelinedDialect")  # as psycopg_async
