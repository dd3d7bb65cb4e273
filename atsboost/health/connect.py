"""Where the health report's connection comes from: an engine's (``report``) or a direct one (``report_for``).

``report(engine)`` is for an application: one of its engine's connections, and
its pool's figures. ``report_for(settings)`` is what ``atsboost-db health`` runs:
one psycopg connection, so the command starts without loading SQLAlchemy.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import psycopg

from atsboost import metrics
from atsboost.health.collect import collect, unreachable
from atsboost.health.model import HealthReport
from atsboost.health.records import Host
from atsboost.metrics.tracing import Span

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from atsboost.config.settings import Settings
    from atsboost.migrations import MigrationStatus

# An unused index smaller than this is not worth reporting.
UNUSED_INDEX_BYTES = 1024 * 1024


def report(
    engine: Engine,
    *,
    long_query_seconds: float = 60.0,
    unused_index_bytes: int = UNUSED_INDEX_BYTES,
    migration_status: MigrationStatus | None = None,
) -> HealthReport:
    """Collect the report over one of ``engine``'s connections; never raises for an unreachable server.

    Nothing leaks into the connection afterwards (``SET LOCAL`` only, rolled back),
    so the application's own engine can be passed; its pool's use is reported.
    The report is a span (``atsboost.health.report``) when tracing is on.
    """
    from atsboost.runtime.engine import engine_url  # here: a psycopg-only report never loads SQLAlchemy

    database = engine_url(engine).render_as_string(hide_password=True)
    with _traced(database) as span:
        result = _engine_report(engine, database, long_query_seconds, unused_index_bytes, migration_status)
        _describe(span, result)
    return result


def _engine_report(
    engine: Engine,
    database: str,
    long_query_seconds: float,
    unused_index_bytes: int,
    migration_status: MigrationStatus | None,
) -> HealthReport:
    import sqlalchemy.exc
    from sqlalchemy.pool import QueuePool

    from atsboost.runtime.pool.internals import pool_usage

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
        from atsboost.runtime.diagnosis import database_error
        from atsboost.runtime.engine import engine_url

        result = unreachable(database, database_error(engine_url(engine), exc), started)
    if result.usage is not None and isinstance(engine.pool, QueuePool):
        result.usage.pool_checked_out, result.usage.pool_capacity = pool_usage(engine.pool)
    return result


def report_for(
    settings: Settings, *, long_query_seconds: float = 60.0, migration_status: MigrationStatus | None = None
) -> HealthReport:
    """Collect the report over one direct connection of the settings, as ``atsboost-db health`` does.

    Settings that need an engine (the embedded server) get ``report`` over one.
    """
    started = time.perf_counter()
    with _traced(settings.masked_url) as span:
        result = _settings_report(settings, long_query_seconds, migration_status, started)
        result.hosts = hosts(settings)
        _describe(span, result)
    return result


def hosts(settings: Settings) -> list[Host]:
    """Ask each host of a multi-host DATABASE_URL its role and timeline (none for one host)."""
    from atsboost.runtime.hosts import addresses, probe

    listed = addresses(settings)
    if len(listed) < 2:
        return []
    found = []
    for address in listed:
        node = probe(settings, address).describe()
        found.append(
            Host(host=node["host"], role=node["role"], timeline=node["timeline"], error=node["error"])
        )
    return found


def _settings_report(
    settings: Settings, long_query_seconds: float, migration_status: MigrationStatus | None, started: float
) -> HealthReport:
    from atsboost.runtime.libpq import direct_connection

    try:
        conn = direct_connection(settings, "health")
    except psycopg.Error as exc:
        from atsboost.runtime.diagnosis import database_error

        explained = database_error(settings.url, exc) if settings.url is not None else exc
        return unreachable(settings.masked_url, explained, started)
    if conn is None:
        from atsboost.runtime.engine import create_engine, engine_url

        engine = create_engine(settings)
        try:
            database = engine_url(engine).render_as_string(hide_password=True)
            return _engine_report(engine, database, long_query_seconds, UNUSED_INDEX_BYTES, migration_status)
        finally:
            engine.dispose()
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


def _traced(database: str) -> AbstractContextManager[Span]:
    """Return a health report's span, under the caller's (a request, a cron job's)."""
    return metrics.tracing.span(
        "atsboost.health.report", {"db.system.name": "postgresql", "atsboost.health.database": database}
    )


def _describe(span: Span, result: HealthReport) -> None:
    """Put the report's outcome on its span: reached or not, and the server's latency."""
    span.set_attribute("atsboost.health.reachable", result.connection.reachable)
    if result.connection.latency_ms is not None:
        span.set_attribute("atsboost.health.latency_ms", result.connection.latency_ms)
