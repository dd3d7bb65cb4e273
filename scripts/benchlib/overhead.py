"""Per-transaction overhead: a one-row query and its commit, through each layer."""

from __future__ import annotations

import psycopg
import sqlalchemy
from psycopg_pool import ConnectionPool
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.db import run_transaction, session_scope
from atsboost.runtime.engine import create_engine
from benchlib.common import Row, per_call, with_ratios

QUERY = "SELECT value FROM bench_items WHERE id = 1"


def run(url: str, *, iterations: int, rounds: int) -> list[Row]:
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    _prepare(libpq)
    statement = text(QUERY)
    rows: list[Row] = []

    def measure(variant: str, fn: object) -> None:
        median, p99 = per_call(fn, iterations=iterations, rounds=rounds)  # type: ignore[arg-type]
        rows.append(Row("overhead", variant, round(median, 1), round(p99, 1)))

    with psycopg.connect(libpq) as raw:

        def raw_call() -> None:
            raw.execute(QUERY).fetchone()
            raw.commit()

        measure("raw psycopg, one connection kept open (floor)", raw_call)

    with ConnectionPool(libpq, min_size=1, max_size=1, open=True) as pool:

        def pool_call() -> None:
            with pool.connection() as conn:
                conn.execute(QUERY).fetchone()

        measure("psycopg_pool", pool_call)

    for variant, engine in (
        ("SQLAlchemy QueuePool, pool_pre_ping=True", sqlalchemy.create_engine(url, pool_pre_ping=True)),
        ("SQLAlchemy QueuePool (no protection)", sqlalchemy.create_engine(url)),
    ):

        def core_call(engine: sqlalchemy.Engine = engine) -> None:
            with engine.begin() as conn:
                conn.execute(statement).scalar()

        measure(variant, core_call)
        engine.dispose()

    ours = create_engine(
        load_settings(
            {
                "ATSBOOST_ENV": "production",
                "DATABASE_URL": url,
                "DATABASE_DISABLE_SSL": "true",
                "DATABASE_HEALTH_MONITOR": "false",
            }
        )
    )

    def ours_core() -> None:
        with ours.begin() as conn:
            conn.execute(statement).scalar()

    def ours_session() -> None:
        with session_scope(ours) as session:
            session.execute(statement).scalar()

    def ours_retry() -> None:
        run_transaction(lambda session: session.execute(statement).scalar(), engine=ours)

    measure("atsboost engine, Core (stale-connection protection on)", ours_core)
    measure("atsboost session_scope (ORM Session)", ours_session)
    measure("atsboost run_transaction (ORM Session + retry)", ours_retry)
    ours.dispose()
    return with_ratios(rows, "raw psycopg, one connection kept open (floor)")


def _prepare(libpq: str) -> None:
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, value int NOT NULL)")
        conn.execute("INSERT INTO bench_items VALUES (1, 42) ON CONFLICT DO NOTHING")
