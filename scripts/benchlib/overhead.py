"""Per-transaction cost: a one-row query and its commit, through each layer, like against like.

atsboost's Core path is compared with SQLAlchemy Core, ``session_scope`` and
``run_transaction`` with a plain ORM ``Session.begin()``; each with and without
``pool_pre_ping``, and atsboost in production, development (leak detection on) and
transaction-pool mode with a statement timeout. That mode is also compared with
what a team writes with plain SQLAlchemy for the same timeout behind a transaction
pooler: ``SET LOCAL`` in each transaction, from the Session's ``after_begin`` event.
The floor is one raw psycopg connection kept open.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

import psycopg
import sqlalchemy
from psycopg_pool import ConnectionPool
from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from atsboost.db import run_transaction, session_scope
from benchlib.common import Row, interleave, per_call, ratio_row, rows_from
from benchlib.engines import atsboost_engine
from benchlib.otel_sdk import otel_switch

QUERY = "SELECT value FROM bench_items WHERE id = 1"
TIMED = "SQLAlchemy ORM Session.begin(), SET LOCAL statement_timeout (after_begin)"
FLOOR = "raw psycopg, one connection kept open (floor)"
STATEMENT = text(QUERY)
WRITE = text("INSERT INTO bench_writes (value) VALUES (1)")  # a write-only transaction: no RETURNING
INSERT_PLAIN = "SQLAlchemy ORM Session.begin(), one INSERT"
INSERT_OURS = "atsboost run_transaction (production), one INSERT"

# (atsboost variant, the plain SQLAlchemy variant it wraps): atsboost's own cost is their ratio.
OWN_COST = [
    ("atsboost engine, Core (production)", "SQLAlchemy Core, QueuePool"),
    ("atsboost engine, Core (development: leak detection on)", "SQLAlchemy Core, QueuePool"),
    ("atsboost session_scope (production)", "SQLAlchemy ORM Session.begin()"),
    ("atsboost run_transaction (production)", "SQLAlchemy ORM Session.begin()"),
    ("atsboost run_transaction (development: leak detection on)", "SQLAlchemy ORM Session.begin()"),
    ("atsboost run_transaction (transaction pool mode, statement timeout)", "SQLAlchemy ORM Session.begin()"),
    ("atsboost run_transaction (transaction pool mode, statement timeout)", TIMED),
    ("atsboost run_transaction (production, read_only=True)", "SQLAlchemy ORM Session.begin(), READ ONLY"),
]
# (with metrics, without): what counting the pool's and the transactions' figures costs.
METRICS_OFF = "DATABASE_METRICS=false"
METRICS_COST = [
    ("atsboost engine, Core (production)", f"atsboost engine, Core (production, {METRICS_OFF})"),
    ("atsboost run_transaction (production)", f"atsboost run_transaction (production, {METRICS_OFF})"),
]
# (BEGIN sent with the first statement, BEGIN on its own): what runtime.pipeline costs in Python calls.
PIPELINED = "DATABASE_PIPELINE_BEGIN=true"
RAW_PIPELINED = "raw psycopg, autocommit, BEGIN and the statement in one pipeline"
PIPELINE_COST = [
    (f"atsboost engine, Core (production, {PIPELINED})", "atsboost engine, Core (production)"),
    (f"atsboost run_transaction (production, {PIPELINED})", "atsboost run_transaction (production)"),
    (
        f"atsboost run_transaction (transaction pool mode, statement timeout, {PIPELINED})",
        "atsboost run_transaction (transaction pool mode, statement timeout)",
    ),
    (RAW_PIPELINED, FLOOR),
    (f"{INSERT_OURS} ({PIPELINED})", INSERT_OURS),
    (f"{INSERT_OURS}, pipeline_commit=True ({PIPELINED})", INSERT_OURS),
]
# The same transaction with OpenTelemetry's SDK on: a span, and a histogram observation per checkout.
OTEL_ON = "atsboost run_transaction (production, OpenTelemetry SDK on)"
OTEL_COST = [(OTEL_ON, "atsboost run_transaction (production)")]


def run(url: str, *, iterations: int, rounds: int) -> list[Row]:
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    prepare(libpq)
    with variants(url, libpq) as calls, otel_switch() as otel_on:
        for call in calls.values():  # open every connection before anything is timed
            for _ in range(50):
                call()
        calls_per_transaction = {name: python_calls(call) for name, call in calls.items()}
        with otel_on():
            calls_per_transaction[OTEL_ON] = python_calls(calls[OTEL_ON])
        measures = {name: per_call(call, iterations=iterations) for name, call in calls.items()}
        measures[OTEL_ON] = switched(measures[OTEL_ON], otel_on)
        figures = interleave(measures, rounds=rounds)
    rows = rows_from("overhead", figures, baseline=FLOOR, unit="us")
    for row in rows:
        row.extra["python_calls"] = calls_per_transaction[row.variant]
    for ours, plain in OWN_COST:
        row = ratio_row("own cost", ours, figures[ours], figures[plain], plain)
        row.extra["python_calls_added"] = round(calls_per_transaction[ours] - calls_per_transaction[plain], 1)
        rows.append(row)
    cases = (
        ("metrics cost", METRICS_COST),
        ("OpenTelemetry cost", OTEL_COST),
        ("pipeline cost", PIPELINE_COST),
    )
    for case, pairs in cases:
        for ours, plain in pairs:
            row = ratio_row(case, ours, figures[ours], figures[plain], plain)
            added = calls_per_transaction[ours] - calls_per_transaction[plain]
            row.extra["python_calls_added"] = round(added, 1)
            rows.append(row)
    return rows


def switched(
    measure: Callable[[], float], on: Callable[[], AbstractContextManager[object]]
) -> Callable[[], float]:
    """The measurement run with ``on()`` entered: the switch stays outside the timed calls."""

    def run() -> float:
        with on():
            return measure()

    return run


@contextmanager
def variants(url: str, libpq: str) -> Iterator[dict[str, Callable[[], object]]]:
    """Every variant as a callable running one transaction; connections closed on exit."""
    with ExitStack() as stack:
        raw = stack.enter_context(psycopg.connect(libpq))
        pool = stack.enter_context(ConnectionPool(libpq, min_size=1, max_size=1, open=True))

        def engine(made: sqlalchemy.Engine) -> sqlalchemy.Engine:
            stack.callback(made.dispose)
            return made

        plain = engine(sqlalchemy.create_engine(url))
        pinged = engine(sqlalchemy.create_engine(url, pool_pre_ping=True))
        production = engine(atsboost_engine(url, "production"))
        uncounted = engine(atsboost_engine(url, "production", DATABASE_METRICS="false"))
        development = engine(atsboost_engine(url, "development"))
        pooled = engine(
            atsboost_engine(
                url, "production", DATABASE_POOL_MODE="transaction", DATABASE_STATEMENT_TIMEOUT="5000"
            )
        )
        pipelined = engine(atsboost_engine(url, "production", DATABASE_PIPELINE_BEGIN="true"))
        pooled_pipelined = engine(
            atsboost_engine(
                url,
                "production",
                DATABASE_POOL_MODE="transaction",
                DATABASE_STATEMENT_TIMEOUT="5000",
                DATABASE_PIPELINE_BEGIN="true",
            )
        )
        autocommit = stack.enter_context(psycopg.connect(libpq, autocommit=True))
        timed = sessionmaker(engine(sqlalchemy.create_engine(url, connect_args={"prepare_threshold": None})))
        event.listen(timed, "after_begin", set_local_timeout)
        yield {
            FLOOR: lambda: raw_transaction(raw),
            "psycopg_pool": lambda: pool_transaction(pool),
            "SQLAlchemy Core, QueuePool": lambda: core(plain),
            "SQLAlchemy Core, pool_pre_ping=True": lambda: core(pinged),
            "atsboost engine, Core (production)": lambda: core(production),
            "atsboost engine, Core (development: leak detection on)": lambda: core(development),
            f"atsboost engine, Core (production, {METRICS_OFF})": lambda: core(uncounted),
            "SQLAlchemy ORM Session.begin()": lambda: orm(plain),
            "SQLAlchemy ORM Session.begin(), pool_pre_ping=True": lambda: orm(pinged),
            "SQLAlchemy ORM Session.begin(), READ ONLY": lambda: orm(plain, read_only=True),
            TIMED: lambda: orm_with(timed),
            "atsboost session_scope (production)": lambda: scoped(production),
            "atsboost run_transaction (production)": lambda: retried(production),
            "atsboost run_transaction (production, read_only=True)": lambda: retried(
                production, read_only=True
            ),
            "atsboost run_transaction (development: leak detection on)": lambda: retried(development),
            f"atsboost run_transaction (production, {METRICS_OFF})": lambda: retried(uncounted),
            OTEL_ON: lambda: retried(production),
            "atsboost run_transaction (transaction pool mode, statement timeout)": lambda: retried(pooled),
            RAW_PIPELINED: lambda: raw_pipelined(autocommit),
            INSERT_PLAIN: lambda: orm_write(plain),
            INSERT_OURS: lambda: written(production),
            f"{INSERT_OURS} ({PIPELINED})": lambda: written(pipelined),
            f"{INSERT_OURS}, pipeline_commit=True ({PIPELINED})": lambda: written(
                pipelined, pipeline_commit=True
            ),
            f"atsboost engine, Core (production, {PIPELINED})": lambda: core(pipelined),
            f"atsboost run_transaction (production, {PIPELINED})": lambda: retried(pipelined),
            f"atsboost run_transaction (transaction pool mode, statement timeout, {PIPELINED})": lambda: (
                retried(pooled_pipelined)
            ),
        }


def python_calls(call: Callable[[], object], transactions: int = 200) -> float:
    """Python function calls per transaction, counted by cProfile: the work each layer adds, without noise."""
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(transactions):
        call()
    profile.disable()
    return round(pstats.Stats(profile).total_calls / transactions, 1)


def raw_transaction(conn: psycopg.Connection) -> None:
    conn.execute(QUERY).fetchone()
    conn.commit()


def raw_pipelined(conn: psycopg.Connection) -> None:
    """What psycopg's public API offers for BEGIN with the statement: both in one pipeline."""
    cursor = conn.cursor()
    with conn.pipeline():
        cursor.execute("BEGIN")
        cursor.execute(QUERY)
    cursor.fetchone()
    conn.commit()


def pool_transaction(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        conn.execute(QUERY).fetchone()


def core(engine: sqlalchemy.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(STATEMENT).scalar()


def orm(engine: sqlalchemy.Engine, *, read_only: bool = False) -> None:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        if read_only:
            session.connection(execution_options={"postgresql_readonly": True})
        session.execute(STATEMENT).scalar()


def set_local_timeout(session: Session, transaction: object, connection: sqlalchemy.Connection) -> None:
    """SQLAlchemy's documented recipe for a per-transaction setting: a statement of its own."""
    connection.exec_driver_sql("SET LOCAL statement_timeout = 5000")


def orm_with(factory: sessionmaker[Session]) -> None:
    with factory(expire_on_commit=False) as session, session.begin():
        session.execute(STATEMENT).scalar()


def scoped(engine: sqlalchemy.Engine) -> None:
    with session_scope(engine) as session:
        session.execute(STATEMENT).scalar()


def retried(engine: sqlalchemy.Engine, *, read_only: bool = False) -> None:
    run_transaction(lambda session: session.execute(STATEMENT).scalar(), engine=engine, read_only=read_only)


def orm_write(engine: sqlalchemy.Engine) -> None:
    with Session(engine) as session, session.begin():
        session.execute(WRITE)


def written(engine: sqlalchemy.Engine, *, pipeline_commit: bool = False) -> None:
    run_transaction(lambda session: session.execute(WRITE), engine=engine, pipeline_commit=pipeline_commit)


def prepare(libpq: str) -> None:
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_writes (value int NOT NULL)")
        conn.execute("CREATE TABLE IF NOT EXISTS bench_items (id int PRIMARY KEY, value int NOT NULL)")
        conn.execute("INSERT INTO bench_items VALUES (1, 42) ON CONFLICT DO NOTHING")
