"""Send a transaction's BEGIN with its first statement: one round trip fewer per transaction.

psycopg opens a transaction by sending ``BEGIN`` and waiting for the answer before it
sends the first statement: a transaction of one statement takes three round trips
(``BEGIN``, the statement, ``COMMIT``). Here the psycopg connection stays in
autocommit mode, and SQLAlchemy's transactions are opened by this dialect: ``BEGIN``
(with the isolation level, READ ONLY and DEFERRABLE SQLAlchemy asked for, and the
transaction pooler's ``SET LOCAL``) is queued in psycopg's pipeline with the
transaction's first statement, and both travel in one round trip. The statement's
result and error are read before ``do_execute`` returns, so SQLAlchemy sees both
where it always did; ``COMMIT`` and ``ROLLBACK`` are psycopg's, which sends them
whenever the server reports a transaction open, autocommit or not.

Public APIs only: SQLAlchemy's documented dialect hooks, on a dialect registered
under its own name (``postgresql+atsboost_pipeline``), over psycopg's
``Connection.pipeline()``. A server-side cursor cannot run in a pipeline: before
one, ``BEGIN`` goes on its own, as without this dialect. Sync engines only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import URL

from atsboost.runtime.transaction_start import begin_statement

DRIVER = "atsboost_pipeline"
registry.register(f"postgresql.{DRIVER}", __name__, "PipelinedDialect")


def pipelined(url: URL) -> URL:
    """Return ``url`` with this module's dialect as its driver."""
    return url.set(drivername=f"postgresql+{DRIVER}")


def configured(url: URL) -> URL:
    """Return ``url`` as configured: psycopg's driver name where this dialect's stands.

    What is shown (reports, errors) and what side engines connect with is the URL
    the user gave, whichever dialect the application's engine runs on.
    """
    return url.set(drivername="postgresql+psycopg") if url.drivername == f"postgresql+{DRIVER}" else url


class PipelinedConnection(psycopg.Connection[Any]):
    """A psycopg connection in autocommit mode whose transactions the dialect opens.

    ``transactional`` is False while SQLAlchemy's isolation level is AUTOCOMMIT;
    ``pending`` holds the commands to send with the next statement.
    """

    transactional: bool = True
    pending: tuple[str, ...] = ()


class PipelinedDialect(PGDialect_psycopg):
    """SQLAlchemy's psycopg dialect, with BEGIN sent in the first statement's round trip."""

    supports_statement_cache = True  # SQLAlchemy reads this from the class's own namespace

    def __init__(self, transaction_setup: Sequence[str] = (), **kwargs: Any) -> None:
        """``transaction_setup``: statements every transaction starts with (``SET LOCAL ...``)."""
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.transaction_setup = tuple(transaction_setup)

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        """Connect in autocommit mode: psycopg then never sends a BEGIN of its own."""
        return PipelinedConnection.connect(*cargs, **{**cparams, "autocommit": True})

    def do_begin(self, dbapi_connection: Any) -> None:
        """Queue BEGIN (and the setup) to go with the next statement; nothing is sent yet."""
        conn = _driver(dbapi_connection)
        if conn.transactional:
            conn.pending = (begin_statement(conn), *self.transaction_setup)

    def do_commit(self, dbapi_connection: Any) -> None:
        """Commit what the server has open; a transaction that ran no statement sent nothing."""
        conn = _driver(dbapi_connection)
        conn.pending = ()
        conn.commit()

    def do_rollback(self, dbapi_connection: Any) -> None:
        """Roll back what the server has open, and forget a BEGIN not yet sent."""
        conn = _driver(dbapi_connection)
        conn.pending = ()
        conn.rollback()

    def do_execute(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        """Execute, with a pending BEGIN in the same round trip."""
        if cursor.connection.pending or isinstance(cursor, psycopg.ServerCursor):
            _with_begin(cursor, lambda: cursor.execute(statement, parameters))
        else:
            cursor.execute(statement, parameters)

    def do_execute_no_params(self, cursor: Any, statement: Any, context: Any = None) -> None:
        """Execute without parameters, with a pending BEGIN in the same round trip."""
        if cursor.connection.pending or isinstance(cursor, psycopg.ServerCursor):
            _with_begin(cursor, lambda: cursor.execute(statement))
        else:
            cursor.execute(statement)

    def do_executemany(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        """Send a pending BEGIN first, then psycopg's own pipelined executemany."""
        _begin_alone(cursor.connection)  # executemany is a pipeline of its own
        cursor.executemany(statement, parameters)

    def set_isolation_level(self, dbapi_connection: Any, level: str) -> None:
        """Keep the level for the next BEGIN; AUTOCOMMIT means no BEGIN at all."""
        conn = _driver(dbapi_connection)
        conn.transactional = level != "AUTOCOMMIT"
        # SQLAlchemy has checked the name; psycopg's enum spells it with underscores.
        conn.isolation_level = psycopg.IsolationLevel[level.replace(" ", "_")] if conn.transactional else None

    def get_isolation_level(self, dbapi_connection: Any) -> Any:
        """Return the level the next BEGIN asks for, or the server's default."""
        conn = _driver(dbapi_connection)
        if not conn.transactional:
            return "AUTOCOMMIT"
        if conn.isolation_level is not None:
            return conn.isolation_level.name.replace("_", " ")
        return super().get_isolation_level(dbapi_connection)  # type: ignore[no-untyped-call]

    def detect_autocommit_setting(self, dbapi_conn: Any) -> bool:
        """Return whether SQLAlchemy's AUTOCOMMIT level is set (psycopg's own flag is always on)."""
        return not _driver(dbapi_conn).transactional


def _driver(dbapi_connection: Any) -> PipelinedConnection:
    """Return the psycopg connection behind SQLAlchemy's pool proxy (``driver_connection``), or itself."""
    return getattr(dbapi_connection, "driver_connection", dbapi_connection)  # type: ignore[no-any-return]


def _with_begin(cursor: Any, run: Callable[[], None]) -> None:
    """Run the pending commands and the statement in one pipeline: one round trip, results read.

    A server-side cursor cannot be pipelined, and needs a transaction even where
    SQLAlchemy began none (psycopg would have opened one): BEGIN goes on its own.
    """
    conn = cursor.connection
    if isinstance(cursor, psycopg.ServerCursor):
        idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if not conn.pending and conn.transactional and idle:
            conn.pending = (begin_statement(conn),)
        _begin_alone(conn)
        run()
        return
    commands, conn.pending = conn.pending, ()
    with conn.pipeline():
        for command in commands:
            cursor.execute(command)
        run()


def _begin_alone(conn: PipelinedConnection) -> None:
    """Send the pending commands on their own (a server-side cursor, executemany)."""
    commands, conn.pending = conn.pending, ()
    for command in commands:
        conn.execute(command)
