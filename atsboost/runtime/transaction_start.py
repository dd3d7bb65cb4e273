"""Start a transaction and set its statement timeout in the same round trip (transaction pooling).

Behind a transaction pooler a session setting would outlive the transaction on a
server connection another client gets next, and poolers reject the ``options``
startup parameter, so the timeout has to be ``SET LOCAL`` in every transaction.
Sent as a statement of its own, that is one more round trip per transaction.

psycopg starts a transaction by sending ``BEGIN`` as a simple query just before
the transaction's first statement, and sends none when the server already reports
a transaction open. So the first statement of each transaction (through a cursor
of the class below) is preceded by one simple query,
``BEGIN ...; SET LOCAL statement_timeout = N``, which takes the place of psycopg's
own ``BEGIN``: the same round trips as plain SQLAlchemy. psycopg offers no public
way to extend its ``BEGIN``; ``Connection.pgconn`` (the libpq connection, public
API) is the documented way to send such a low-level command. A server-side cursor
(``stream_results``) that opens a transaction gets psycopg's plain ``BEGIN``.

For psycopg's ``AsyncConnection`` (SQLAlchemy's asyncio engine) the same message is
sent with libpq's non-blocking calls, and the task waits on the socket through the
event loop, so nothing blocks.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq

if TYPE_CHECKING:
    from atsboost.config.settings import Settings


def pooler_setup(settings: Settings) -> tuple[str, ...]:
    """Return what each transaction starts with behind a transaction pooler: the statement timeout.

    The cursors below send it with psycopg's BEGIN; ``runtime.pipeline`` with its own.
    """
    timeout = settings.statement_timeout_ms
    if settings.pool.mode != "transaction" or timeout is None:
        return ()
    return (statement_timeout_command(timeout),)


def statement_timeout_command(milliseconds: int) -> str:
    """Return the ``SET LOCAL`` that bounds a transaction's statements behind a transaction pooler."""
    return f"SET LOCAL statement_timeout = {int(milliseconds)}"


def statement_timeout_cursor(milliseconds: int) -> type[psycopg.Cursor[Any]]:
    """Return a psycopg cursor class that opens each transaction with ``SET LOCAL statement_timeout``.

    Passed as ``cursor_factory`` (a documented psycopg and SQLAlchemy connect argument).
    A cursor, rather than a SQLAlchemy ``before_cursor_execute`` listener, because any
    engine listener puts every Connection on SQLAlchemy's slower event path (about 90
    more Python calls a transaction).
    """
    command = statement_timeout_command(milliseconds)

    class StatementTimeoutCursor(psycopg.Cursor[Any]):
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            begin(self.connection, command)
            return super().execute(*args, **kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> Any:
            begin(self.connection, command)
            return super().executemany(*args, **kwargs)

    return StatementTimeoutCursor


def async_statement_timeout_cursor(milliseconds: int) -> type[psycopg.AsyncCursor[Any]]:
    """Return the same cursor class for psycopg's ``AsyncConnection`` (SQLAlchemy's asyncio engine)."""
    command = statement_timeout_command(milliseconds)

    class AsyncStatementTimeoutCursor(psycopg.AsyncCursor[Any]):
        async def execute(self, *args: Any, **kwargs: Any) -> Any:
            await begin_async(self.connection, command)
            return await super().execute(*args, **kwargs)

        async def executemany(self, *args: Any, **kwargs: Any) -> Any:
            await begin_async(self.connection, command)
            return await super().executemany(*args, **kwargs)

    return AsyncStatementTimeoutCursor


PIPELINE_STATE = "atsboost_transactions"  # set on a connection whose transactions runtime.pipeline opens


def opens_own_transactions(connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Return whether ``connection`` is in autocommit because ``runtime.pipeline`` opens its transactions."""
    return hasattr(connection, PIPELINE_STATE)


def begin(connection: psycopg.Connection[Any], command: str) -> None:
    """Open the transaction psycopg would open, with ``command`` in the same round trip.

    Does nothing in autocommit mode or when a transaction is already open. It runs
    inside the cursor's execute, so SQLAlchemy classifies a failure here (disconnect,
    retryable) like any statement's.
    """
    pgconn = connection.pgconn
    if connection.autocommit or pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return
    result = pgconn.exec_(f"{begin_statement(connection)}; {command}".encode())
    if result.status != pq.ExecStatus.COMMAND_OK:
        message = (result.error_message or pgconn.error_message).decode(errors="replace").strip()
        sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
        raise _error_class(sqlstate)(message or "the transaction could not be started")


async def begin_async(connection: psycopg.AsyncConnection[Any], command: str) -> None:
    """``begin`` for an AsyncConnection: the same message, sent and awaited without blocking the loop.

    libpq's asynchronous calls (``send_query``, ``flush``, ``consume_input``,
    ``get_result``, all public on ``pgconn``) with the event loop told to wake the task
    when the socket is ready.
    """
    pgconn = connection.pgconn
    if connection.autocommit or pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return
    pgconn.send_query(f"{begin_statement(connection)}; {command}".encode())
    while pgconn.flush():  # 1 while data is left to send on the non-blocking socket
        await _ready(pgconn.socket, writing=True)
    failed: pq.abc.PGresult | None = None
    while True:
        while pgconn.is_busy():
            await _ready(pgconn.socket, writing=False)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            break
        if result.status != pq.ExecStatus.COMMAND_OK and failed is None:
            failed = result
    if failed is not None:
        message = (failed.error_message or pgconn.error_message).decode(errors="replace").strip()
        raise _error_class(failed.error_field(pq.DiagnosticField.SQLSTATE))(
            message or "the transaction could not be started"
        )


async def _ready(fileno: int, *, writing: bool) -> None:
    """Wait until the socket can be read (or written) without blocking the event loop."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if writing:
        loop.add_writer(fileno, wake)
    else:
        loop.add_reader(fileno, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if writing else loop.remove_reader)(fileno)


def _error_class(sqlstate: bytes | None) -> type[psycopg.Error]:
    """Return the psycopg exception class for a SQLSTATE, as psycopg itself would raise."""
    try:
        return psycopg.errors.lookup(sqlstate.decode()) if sqlstate else psycopg.OperationalError
    except KeyError:
        return psycopg.DatabaseError


def begin_statement(
    connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any], isolation: str | None = None
) -> str:
    """Return the BEGIN psycopg would send, with the isolation level, read-only and deferrable flags.

    ``isolation`` (SQLAlchemy's spelling, ``READ COMMITTED``) stands for the connection's own level.
    """
    parts = ["BEGIN"]
    if isolation is None and connection.isolation_level is not None:
        isolation = connection.isolation_level.name.replace("_", " ")
    if isolation is not None:
        parts.append(f"ISOLATION LEVEL {isolation}")
    if connection.read_only is not None:
        parts.append("READ ONLY" if connection.read_only else "READ WRITE")
    if connection.deferrable is not None:
        parts.append("DEFERRABLE" if connection.deferrable else "NOT DEFERRABLE")
    return " ".join(parts)
