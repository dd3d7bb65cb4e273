"""The test's own connection, lent to the code under test inside one transaction.

An engine of the SAVEPOINT dialect (``testing.dialect``) whose pool holds exactly
one connection: every Connection and Session opened on it, by the test or by the
application through ``atsboost.db`` and ``atsboost.aio``, works on that connection,
inside the test's transaction, which is rolled back when the test ends. The sync
connection serves one test after another for the whole process; an asyncio one
belongs to its event loop, so each test opens its own on its loop.
"""

from __future__ import annotations

from typing import Any

import psycopg
import sqlalchemy
from psycopg.pq import TransactionStatus
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import StaticPool

from atsboost.config.settings import Settings
from atsboost.errors import TestDatabaseError
from atsboost.runtime.libpq import connect_args
from atsboost.testing.dialect import NAME, SavepointTransactions

_URL = URL.create(f"postgresql+{NAME}")
IDLE = TransactionStatus.IDLE
# One round trip ends a test: its transaction, and the session-level advisory locks that a
# rollback leaves (the connection serves the next test; its SETs and temp tables roll back).
END_TEST = "ROLLBACK; SELECT pg_advisory_unlock_all()"


def connection_parameters(settings: Settings, *, asynchronous: bool = False) -> dict[str, Any]:
    """Return the libpq parameters of a connection to the settings' database, as atsboost's engine's."""
    assert settings.url is not None
    params = settings.url.libpq()
    if params is None:
        raise TestDatabaseError(
            "the test server's URL names several hosts; give ATSBOOST_TEST_DATABASE_URL one"
        )
    return {**params, **connect_args(settings, asynchronous=asynchronous)}


class LentConnection:
    """A test process's connection to its test database, lent to one test at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._driver: psycopg.Connection[Any] | None = None
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        """The engine whose every connection is this one, inside the test's transaction."""
        if self._engine is None:
            self._engine = sqlalchemy.create_engine(
                _URL, creator=self._connect, poolclass=StaticPool, pool_reset_on_return=None
            )
        return self._engine

    def _connect(self) -> psycopg.Connection[Any]:
        """Connect (again, after a lost connection); the dialect begins each test's transaction."""
        self._driver = psycopg.connect(**connection_parameters(self.settings), autocommit=True)
        return self._driver

    def end_test(self) -> None:
        """Roll the test's transaction back, so that the next test finds the database as migrated."""
        driver = self._driver
        if driver is not None and not driver.closed and driver.info.transaction_status != IDLE:
            driver.execute(END_TEST)
        if self._engine is not None:
            dialect = self._engine.dialect
            assert isinstance(dialect, SavepointTransactions)
            dialect.forget()

    def close(self) -> None:
        """Close the connection (after ``end_test``)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._driver is not None:
            self._driver.close()
            self._driver = None


class AsyncLentConnection:
    """One test's asyncio connection to the test database, opened on the test's event loop."""

    def __init__(self, settings: Settings) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        self.settings = settings
        self._driver: psycopg.AsyncConnection[Any] | None = None
        self.engine = create_async_engine(
            _URL, async_creator=self._connect, poolclass=StaticPool, pool_reset_on_return=None
        )

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        params = connection_parameters(self.settings, asynchronous=True)
        self._driver = await psycopg.AsyncConnection.connect(**params, autocommit=True)
        return self._driver

    async def close(self) -> None:
        """Roll the test's transaction back and close the connection."""
        driver = self._driver
        if driver is not None and not driver.closed and driver.info.transaction_status != IDLE:
            await driver.execute(END_TEST)
        await self.engine.dispose()
