"""Transaction-pool mode: the statement timeout travels with BEGIN, never as a round trip of its own."""

import tempfile
from contextlib import contextmanager

import pytest
import sqlalchemy
from psycopg import pq
from sqlalchemy import text

from atsboost.db import run_transaction


@contextmanager
def round_trips(engine):
    """Trace one pooled connection's protocol with libpq's PQtrace; yield (connection, result dict).

    A round trip is a run of messages from the client followed by the server's answer,
    so the count is the number of times the direction turns from client to server.
    """
    result: dict[str, int] = {}
    with engine.connect() as conn:
        conn.commit()  # the pool's first checkout; the connection is now idle
        dbapi = conn.connection.dbapi_connection
        with tempfile.TemporaryFile("w+") as trace:
            dbapi.pgconn.trace(trace.fileno())
            dbapi.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                yield conn, result
            finally:
                dbapi.pgconn.untrace()
            trace.seek(0)
            directions = [line.split("\t")[0] for line in trace.read().splitlines() if line]
    turns = zip(["B", *directions], directions, strict=False)
    result["round_trips"] = sum(1 for turn in turns if turn == ("B", "F"))


def one_transaction(conn):
    conn.execute(text("SELECT 1")).scalar_one()
    conn.commit()


def test_plain_sqlalchemy_takes_three_round_trips(database_url):
    engine = sqlalchemy.create_engine(database_url)
    try:
        with round_trips(engine) as (conn, result):
            one_transaction(conn)
        assert result["round_trips"] == 3  # BEGIN, the SELECT, COMMIT
    finally:
        engine.dispose()


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_atsboost_takes_no_more_round_trips_with_a_statement_timeout(make_engine, mode):
    engine = make_engine(DATABASE_POOL_MODE=mode, DATABASE_STATEMENT_TIMEOUT="250")
    with round_trips(engine) as (conn, result):
        one_transaction(conn)
    assert result["round_trips"] == 3


def test_the_timeout_applies_in_every_transaction_and_ends_with_it(make_engine):
    engine = make_engine(DATABASE_POOL_MODE="transaction", DATABASE_STATEMENT_TIMEOUT="250")
    with engine.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "250ms"
        conn.commit()
        with pytest.raises(sqlalchemy.exc.OperationalError, match="statement timeout"):
            conn.execute(text("SELECT pg_sleep(2)"))
        conn.rollback()
        conn.execute(text("SET statement_timeout = 0"))  # session level, as another pooler client would see
        conn.commit()
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "250ms"
        conn.rollback()


def test_isolation_level_and_read_only_survive_the_combined_begin(make_engine):
    engine = make_engine(DATABASE_POOL_MODE="transaction", DATABASE_STATEMENT_TIMEOUT="250")
    with engine.connect().execution_options(isolation_level="SERIALIZABLE") as conn:
        assert conn.execute(text("SHOW transaction_isolation")).scalar_one() == "serializable"
    assert (
        run_transaction(
            lambda s: s.execute(text("SHOW transaction_read_only")).scalar_one(),
            engine=engine,
            read_only=True,
        )
        == "on"
    )
