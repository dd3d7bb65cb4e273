"""The database session a migration runs in: its connection, engine and timeouts.

Every migration session starts with ``lock_timeout`` (so DDL never queues behind
a long transaction while all other queries queue behind the DDL) and a
``statement_timeout``; offline SQL starts with the same two statements, so a
script applied by hand gets the same protection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy
from alembic.config import Config
from sqlalchemy import Connection, Engine

from atsboost.config.settings import MigrationSettings, Settings, get_migration_settings, get_settings
from atsboost.errors import MigrationError
from atsboost.migrations.run.options import options_of
from atsboost.runtime.diagnosis import database_error
from atsboost.runtime.engine import database_url, engine_url, side_engine


def migration_settings(config: Config) -> MigrationSettings:
    """Return the migration settings handed in by the caller, else those of the environment."""
    settings = options_of(config).settings
    return settings.migration if settings is not None else get_migration_settings()


def session_timeouts(settings: MigrationSettings) -> list[str]:
    """Return the SET statements every migration session starts with, online and in offline SQL."""
    return [
        f"SET lock_timeout = '{round(settings.lock_timeout * 1000)}ms'",
        f"SET statement_timeout = '{round(settings.statement_timeout * 1000)}ms'",
    ]


@contextmanager
def connection(config: Config) -> Iterator[Connection]:
    """Yield the connection to migrate on, with the migration timeouts set for its session.

    A Connection or Engine handed in through the options is used as given, and a
    handed-in Connection gets its own timeouts back afterwards.
    """
    options = options_of(config)
    timeouts = session_timeouts(migration_settings(config))
    given = options.connection
    if isinstance(given, Connection):
        with _timeouts_restored(given):
            _set(given, timeouts)
            yield given
        return
    engine = given if isinstance(given, Engine) else migration_engine(options.settings or get_settings())
    try:
        with _connected(engine) as conn:
            _set(conn, timeouts)
            yield conn
    finally:
        if engine is not given:
            engine.dispose()


@contextmanager
def _connected(engine: Engine) -> Iterator[Connection]:
    """Connect, turning a failure to connect into the one-line error every command gives."""
    try:
        conn = engine.connect()
    except sqlalchemy.exc.DBAPIError as exc:
        raise database_error(engine_url(engine), exc) from None
    with conn:
        yield conn


@contextmanager
def _timeouts_restored(conn: Connection) -> Iterator[None]:
    names = ("lock_timeout", "statement_timeout")
    outside = not conn.in_transaction()
    previous = [f"SET {name} = '{conn.exec_driver_sql(f'SHOW {name}').scalar_one()}'" for name in names]
    if outside:
        conn.commit()  # reading them must not leave the caller's connection in a transaction
    try:
        yield
    finally:
        with contextlib.suppress(sqlalchemy.exc.DBAPIError):
            _set(conn, previous)


def _set(conn: Connection, statements: list[str]) -> None:
    """Run session-level SETs; outside a caller's transaction, commit so none stays open."""
    outside = not conn.in_transaction()
    for statement in statements:
        conn.exec_driver_sql(statement)
    if outside:
        conn.commit()


def migration_engine(settings: Settings) -> Engine:
    """Build an engine for migrations: no pool, the app's SSL, a telling application_name.

    It connects to DATABASE_MIGRATION_URL when set. Through a transaction pooler without
    it, migrating is refused: the advisory lock and the session's timeouts need one
    server session for the whole run, which such a pooler does not give.
    """
    if settings.migration_url is None and settings.pool.mode == "transaction":
        raise MigrationError(
            "DATABASE_POOL_MODE=transaction means DATABASE_URL goes through a transaction pooler, where "
            "migrations cannot hold their lock or their session settings; set DATABASE_MIGRATION_URL to "
            "a direct connection to PostgreSQL (for example port 5432 instead of the pooler's)"
        )
    direct = settings.migration_url
    return side_engine(settings, direct.sqlalchemy() if direct else database_url(settings), "migrate")
