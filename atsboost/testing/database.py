"""A test process's database, and how each test gets it: in a transaction, or for real.

``open_database`` prepares the process's clone of the migrated template
(``testing.databases``). A test then borrows it in one of two ways:

- in a transaction (the default): a Connection on the lent connection
  (``testing.lending``), rolled back afterwards, while ``atsboost.db`` (or
  ``atsboost.aio``) hands the code under test the same connection;
- for real (``transactional=False``): a Connection of atsboost's own engine for the
  database, whose commits are real, while ``atsboost.db`` uses that engine; the
  database is put back as it was cloned afterwards (``testing.reset``).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import Connection, Engine

from atsboost.config.settings import Settings
from atsboost.config.testing import for_database
from atsboost.runtime.libpq import direct_connection
from atsboost.testing import databases
from atsboost.testing.databases import Run
from atsboost.testing.lending import AsyncLentConnection, LentConnection
from atsboost.testing.reset import Snapshot

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class TestDatabase:
    """A migrated database of this process's own, lent to its tests one at a time."""

    __test__ = False  # not a test class, though its name starts so

    def __init__(self, server: Settings, template: str, name: str, admin: psycopg.Connection[Any]) -> None:
        self.server = server
        self.template = template
        self.settings = for_database(server, name)
        self._admin = admin  # holds this process's slot (``databases.claim``) until ``close``
        self.lent = LentConnection(self.settings)
        self._engine: Engine | None = None
        self._own: psycopg.Connection[Any] | None = None  # on this database: reads and restores rows
        self._snapshot: Snapshot | None = None
        self._extra = itertools.count(1)

    @property
    def name(self) -> str:
        """The database's name."""
        assert self.settings.url is not None and self.settings.url.database is not None
        return self.settings.url.database

    @property
    def engine(self) -> Engine:
        """The engine atsboost builds for this database: real connections, real commits."""
        if self._engine is None:
            from atsboost.runtime.engine import create_engine

            self._engine = create_engine(self.settings)
        return self._engine

    @contextmanager
    def connection(self, *, transactional: bool = True) -> Iterator[Connection]:
        """Lend a Connection for one test, with ``atsboost.db`` on the same database meanwhile."""
        from atsboost import db

        engine = self.lent.engine if transactional else self._for_real()
        try:
            with db.default.bound(engine, self.settings), engine.connect() as conn:
                if transactional:
                    conn.begin()
                try:
                    yield conn
                finally:
                    if transactional:  # one ROLLBACK ends it all: closing then rolls back nothing more
                        self.lent.end_test()
        finally:
            if not transactional:
                self._put_back()

    @asynccontextmanager
    async def async_connection(self, *, transactional: bool = True) -> AsyncIterator[AsyncConnection]:
        """Lend an AsyncConnection on the running loop, with ``atsboost.aio`` on the same database."""
        from atsboost import aio
        from atsboost.runtime.aio.engine import create_async_engine

        lent = AsyncLentConnection(self.settings) if transactional else None
        if not transactional:
            self._for_real()
        engine: AsyncEngine = lent.engine if lent is not None else create_async_engine(self.settings)
        try:
            with aio.default.bound(engine, self.settings):
                async with engine.connect() as conn:
                    if lent is not None:
                        await conn.begin()
                    yield conn
        finally:
            if lent is not None:
                await lent.close()
            else:
                await engine.dispose()
                self._put_back()

    def _for_real(self) -> Engine:
        """Read the rows as cloned (once, before anything commits), mark the copy, return the real engine."""
        if self._own is None:
            self._own = direct_connection(self.settings, "test")
            assert self._own is not None
        if self._snapshot is None:
            self._snapshot = Snapshot.read(self._own)
        databases.in_use(self._admin, self.name)
        return self.engine

    def _put_back(self) -> None:
        """After a test that committed: close its connections, then restore the database as cloned."""
        self.engine.dispose()
        assert self._snapshot is not None and self._own is not None
        self._snapshot.restore(self._own)
        databases.put_back(self._admin, self.name, self.template)

    @contextmanager
    def empty(self) -> Iterator[Settings]:
        """Make a new empty database on the same server, dropped afterwards (migration tests)."""
        name = f"{self.name}_e{next(self._extra)}"
        databases.drop(self._admin, name)
        self._admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield for_database(self.server, name)
        finally:
            databases.drop(self._admin, name)

    def close(self) -> None:
        """Close every connection; the copy stays for the next run, and its slot is free again."""
        self.lent.close()
        if self._engine is not None:
            self._engine.dispose()
        if self._own is not None:
            self._own.close()
        self._admin.close()


def open_database(server: Settings, project_root: Path, run: Run) -> TestDatabase:
    """Prepare this process's database: the template migrated (or reused), then a copy claimed."""
    template = databases.template_name(project_root)
    conn = databases.connect_admin(server)
    try:
        with databases.preparing(conn, template):
            reason = databases.stale_reason(server, conn, template, run)
            if reason is not None:
                databases.build(server, conn, template, run, reason)
            name = databases.claim(conn, template, run)
    except BaseException:
        conn.close()
        raise
    return TestDatabase(server, template, name, conn)
