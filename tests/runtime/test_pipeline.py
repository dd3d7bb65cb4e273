"""DATABASE_PIPELINE_BEGIN: BEGIN travels with the first statement, and nothing else changes."""

import logging

import pytest
import sqlalchemy
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from atsboost.db import run_transaction, session_scope
from tests.protocol import round_trips

ON = {"DATABASE_PIPELINE_BEGIN": "true"}


def one_transaction(conn):
    assert conn.execute(text("SELECT 1")).scalar_one() == 1
    conn.commit()


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_a_one_statement_transaction_takes_two_round_trips(make_engine, mode):
    engine = make_engine(**ON, DATABASE_POOL_MODE=mode, DATABASE_STATEMENT_TIMEOUT="250")
    assert engine.url.drivername == "postgresql+atsboost_pipeline"
    with round_trips(engine) as (conn, result):
        one_transaction(conn)
    assert result["round_trips"] == 2  # BEGIN with the SELECT, COMMIT


def test_the_pooler_s_timeout_goes_with_begin_and_applies(make_engine):
    engine = make_engine(**ON, DATABASE_POOL_MODE="transaction", DATABASE_STATEMENT_TIMEOUT="250")
    with round_trips(engine) as (conn, result):
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "250ms"
        conn.commit()
    assert result["round_trips"] == 2
    with engine.connect() as conn, pytest.raises(sqlalchemy.exc.OperationalError, match="statement timeout"):
        conn.execute(text("SELECT pg_sleep(2)"))


def test_run_transaction_and_session_scope_take_two_round_trips(make_engine):
    engine = make_engine(**ON)
    with round_trips(engine) as (conn, result), Session(bind=conn) as session:
        assert session.execute(text("SELECT 2")).scalar_one() == 2
        session.commit()
    assert result["round_trips"] == 2
    assert run_transaction(lambda s: s.execute(text("SELECT 3")).scalar_one(), engine=engine) == 3
    with session_scope(engine) as session:
        assert session.execute(text("SELECT 4")).scalar_one() == 4


def test_an_error_is_raised_by_the_statement_that_caused_it(make_engine):
    engine = make_engine(**ON)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id int PRIMARY KEY)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with engine.connect() as conn:
        with pytest.raises(sqlalchemy.exc.IntegrityError, match="duplicate key"):
            conn.execute(text("INSERT INTO t VALUES (1)"))
        conn.rollback()
        conn.execute(text("INSERT INTO t VALUES (2)"))
        conn.commit()
        assert conn.execute(text("SELECT array_agg(id ORDER BY id) FROM t")).scalar_one() == [1, 2]


def test_isolation_read_only_and_deferrable_reach_the_server(make_engine):
    engine = make_engine(**ON)
    options = {"isolation_level": "SERIALIZABLE", "postgresql_readonly": True, "postgresql_deferrable": True}
    with engine.connect().execution_options(**options) as conn:
        shown = conn.execute(
            text(
                "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only'), "
                "current_setting('transaction_deferrable')"
            )
        ).one()
        assert tuple(shown) == ("serializable", "on", "on")
        assert conn.get_isolation_level() == "SERIALIZABLE"
    with engine.connect() as conn:  # back in the pool, the defaults again
        assert conn.execute(text("SHOW transaction_isolation")).scalar_one() == "read committed"
    read_only = run_transaction(
        lambda s: s.execute(text("SHOW transaction_read_only")).scalar_one(), engine=engine, read_only=True
    )
    assert read_only == "on"


def test_autocommit_isolation_sends_no_begin(make_engine):
    engine = make_engine(**ON)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        assert conn.get_isolation_level() == "AUTOCOMMIT"
        assert conn.execute(text("SELECT now() = statement_timestamp()")).scalar_one()  # no transaction
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_sleep(0.01)"))
        assert not conn.execute(text("SELECT now() = statement_timestamp()")).scalar_one()


def test_savepoints_server_side_cursors_and_executemany(make_engine):
    engine = make_engine(**ON)
    table = Table("items", MetaData(), Column("id", Integer, primary_key=True), Column("name", String))
    table.metadata.create_all(engine)
    with engine.connect() as conn:
        conn.execute(insert(table), [{"id": i, "name": f"n{i}"} for i in range(1, 101)])  # executemany first
        with conn.begin_nested() as nested:
            conn.execute(insert(table).values(id=1000, name="gone"))
            nested.rollback()
        conn.commit()
    with engine.connect() as conn:
        streamed = conn.execution_options(stream_results=True, max_row_buffer=10).execute(
            select(table.c.id).order_by(table.c.id)
        )
        assert [row.id for row in streamed] == list(range(1, 101))
        conn.rollback()
        assert conn.execute(text("SELECT count(*) FROM items")).scalar_one() == 100


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    balance: Mapped[int]
    version: Mapped[int] = mapped_column(nullable=False)
    __mapper_args__ = {"version_id_col": version}


def test_the_orm_s_flush_and_versioned_updates(make_engine):
    engine = make_engine(**ON)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Account(id=1, balance=10))
        session.commit()
    with Session(engine) as first, Session(engine) as second:
        mine, theirs = first.get_one(Account, 1), second.get_one(Account, 1)
        mine.balance, theirs.balance = 20, 30
        first.commit()
        with pytest.raises(StaleDataError, match="expected to update 1 row"):
            second.commit()
    with Session(engine) as session:
        assert session.get_one(Account, 1).balance == 20


def test_a_health_report_on_the_engine_leaves_its_connection_as_it_was(make_settings, make_engine):
    from atsboost.health import report

    engine = make_engine(**ON, DATABASE_POOL_SIZE="1", DATABASE_MAX_OVERFLOW="0")
    assert report(engine).connection.reachable
    with engine.connect() as conn:
        assert conn.execute(text("SHOW default_transaction_read_only")).scalar_one() == "off"
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "0"


def test_reports_show_the_url_as_configured(make_settings, make_engine):
    from atsboost.health import report

    settings = make_settings(**ON)
    assert report(make_engine(**ON)).database == settings.masked_url  # postgresql+psycopg, as given


def test_the_asyncio_engine_says_it_sends_begin_on_its_own(make_settings, caplog):
    from atsboost.runtime.aio.engine import create_async_engine

    with caplog.at_level(logging.WARNING, logger="atsboost.runtime.aio.engine"):
        engine = create_async_engine(make_settings(**ON))
    engine.sync_engine.dispose()
    assert "DATABASE_PIPELINE_BEGIN applies to sync engines only" in caplog.text
    assert engine.url.drivername == "postgresql+psycopg"
