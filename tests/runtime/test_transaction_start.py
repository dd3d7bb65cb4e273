"""Transaction-pool mode: the statement timeout travels with BEGIN, never as a round trip of its own."""

import pytest
import sqlalchemy
from sqlalchemy import text

from atsboost.db import run_transaction
from tests.protocol import round_trips


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
    pipelined = (
        engine.url.drivername == "postgresql+atsboost_pipeline"
    )  # DATABASE_PIPELINE_BEGIN (test_pipeline)
    assert result["round_trips"] == (2 if pipelined else 3)


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
