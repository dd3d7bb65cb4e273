"""Where the health report's connection comes from: an engine's (``report``) or a direct one (``report_for``).

``report(engine)`` is for an application: one of its engine's connections, and
its pool's figures. ``report_for(settings)`` is what ``atsboost-db health`` runs:
one psycopg connection, so the command starts without loading SQLAlchemy.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import psycopg

from atsboost.health.collect import collect, unreachable
from atsboost.health.model import HealthReport

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from atsboost.config.settings import Settings
    from atsboost.migrations import MigrationStatus


def report(
    engine: Engine,
    *,
    long_query_seconds: float = 60.0,
    unused_index_bytes: int = 1024 * 1024,
    migration_status: MigrationStatus | None = None,
) -> HealthReport:
    """Collect the report over one of ``engine``'s connections; never raises for an unreachable server.

    Nothing leaks into the connection afterwards (``SET LOCAL`` only, rolled back),
    so the application's own engine can be passed; its pool's use is reported.
    """
    import sqlalchemy.exc
    from sqlalchemy.pool import QueuePool

    from atsboost.runtime.pool_internals import pool_usage

    database = engine.url.render_as_string(hide_password=True)
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
            result = collect(
                driver,
                database,
                long_query_seconds=long_query_seconds,
                unused_index_bytes=unused_index_bytes,
                migration_status=migration_status,
                started=started,
            )
    except sqlalchemy.exc.DBAPIError as exc:
        result = unreachable(database, exc, started)
    if result.usage is not None and isinstance(engine.pool, QueuePool):
        result.usage.pool_checked_out, result.usage.pool_capacity = pool_usage(engine.pool)
    return result


def report_for(
    settings: Settings, *, long_query_seconds: float = 60.0, migration_status: MigrationStatus | None = None
) -> HealthReport:
    """Collect the report over one direct connection of the settings, as ``atsboost-db health`` does.

    Settings that need an engine (the embedded server) get ``report`` over one.
    """
    from atsboost.runtime.libpq import direct_connection

    started = time.perf_counter()
    try:
        conn = direct_connection(settings, "health")
    except psycopg.Error as exc:
        return unreachable(settings.masked_url, exc, started)
    if conn is not None:
        # Behind a transaction pooler session settings would outlive the report: one transaction instead.
        conn.autocommit = settings.pool.mode != "transaction"
        with conn:
            return collect(
                conn,
                settings.masked_url,
                long_query_seconds=long_query_seconds,
                migration_status=migration_status,
                started=started,
            )
    from atsboost.runtime.engine import create_engine

    engine = create_engine(settings)
    try:
        return report(engine, long_query_seconds=long_query_seconds, migration_status=migration_status)
    finally:
        engine.dispose()
