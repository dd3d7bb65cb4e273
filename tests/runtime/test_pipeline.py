"""DATABASE_PIPELINE_BEGIN: BEGIN travels with the first statement, and nothing else changes."""

import pytest
import sqlalchemy
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from atsboost.db import run_transaction, session_scope
from atsboost.errors import ConfigurationError
from tests.protocol import round_trips, trips_of

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


def one_account(engine) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Account(id=1, balance=10))
        session.commit()


def assert_a_stale_update_is_refused(engine, options: dict[str, bool]) -> None:
    """Two sessions update the same versioned row: the second (with ``options``) fails, the first stands."""
    with Session(engine) as first, Session(engine) as second:
        second.connection(execution_options=options)
        mine, theirs = first.get_one(Account, 1), second.get_one(Account, 1)
        mine.balance, theirs.balance = 20, 30
        first.commit()
        with pytest.raises(StaleDataError, match="expected to update 1 row"):
            second.commit()
    with Session(engine) as session:
        assert session.get_one(Account, 1).balance == 20


def test_the_orm_s_flush_and_versioned_updates(make_engine):
    engine = make_engine(**ON)
    one_account(engine)
    assert_a_stale_update_is_refused(engine, {})


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


ONE = {**ON, "DATABASE_POOL_SIZE": "1", "DATABASE_MAX_OVERFLOW": "0"}
EVENTS = Table("events", MetaData(), Column("id", Integer, primary_key=True), Column("name", String))


def test_a_write_only_transaction_takes_one_round_trip(make_engine):
    engine = make_engine(**ONE)
    EVENTS.metadata.create_all(engine)

    def write() -> None:
        def insert_two(session: Session) -> None:
            session.execute(insert(EVENTS).values(id=1, name="a"))
            session.execute(insert(EVENTS).values(id=2, name="b"))

        run_transaction(insert_two, engine=engine, pipeline_commit=True)

    assert trips_of(engine, write) == 1  # BEGIN, both INSERTs and COMMIT in one flight
    with engine.connect() as conn:
        assert conn.execute(select(EVENTS.c.name).order_by(EVENTS.c.id)).scalars().all() == ["a", "b"]


def test_a_queued_write_s_error_is_raised_at_commit_and_nothing_is_kept(make_engine):
    engine = make_engine(**ONE)
    EVENTS.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(EVENTS).values(id=1, name="a"))

    def clash(session: Session) -> None:
        session.execute(insert(EVENTS).values(id=2, name="b"))
        session.execute(insert(EVENTS).values(id=1, name="again"))

    with pytest.raises(sqlalchemy.exc.IntegrityError, match="duplicate key"):
        run_transaction(clash, engine=engine, pipeline_commit=True)
    with engine.connect() as conn:
        assert conn.execute(select(EVENTS.c.id)).scalars().all() == [1]
        conn.execute(insert(EVENTS).values(id=3, name="c"))  # the connection works on
        conn.commit()


def test_a_transient_error_at_commit_is_retried(make_engine):
    engine = make_engine(**ONE)
    EVENTS.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE SEQUENCE tries"))
        conn.execute(
            text(
                "CREATE FUNCTION first_fails() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF nextval('tries') = 1 THEN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        conn.execute(
            text("CREATE TRIGGER t BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION first_fails()")
        )
    run_transaction(
        lambda s: s.execute(insert(EVENTS).values(id=1, name="a")), engine=engine, pipeline_commit=True
    )
    with engine.connect() as conn:
        assert conn.execute(select(EVENTS.c.id)).scalars().all() == [1]
        assert conn.execute(text("SELECT last_value FROM tries")).scalar_one() == 2  # failed once, then ran


def test_reads_and_updates_are_answered_at_once(make_engine):
    engine = make_engine(**ON)
    one_account(engine)

    def work(session: Session) -> int:
        session.execute(insert(Account).values(id=2, balance=5, version=1))  # queued
        moved = session.connection().execute(text("UPDATE accounts SET balance = balance + 1")).rowcount
        assert session.execute(text("SELECT count(*) FROM accounts")).scalar_one() == 2
        return moved

    assert run_transaction(work, engine=engine, pipeline_commit=True) == 2
    with Session(engine) as session:  # back to one row at balance 10, as the stale scenario expects
        session.execute(text("DELETE FROM accounts WHERE id = 2"))
        session.execute(text("UPDATE accounts SET balance = 10"))
        session.commit()
    assert_a_stale_update_is_refused(engine, {"atsboost_pipeline_commit": True})  # its flush's UPDATE too


def test_pipeline_commit_needs_the_pipelined_engine(make_engine):
    engine = make_engine(DATABASE_PIPELINE_BEGIN="false")
    with pytest.raises(ConfigurationError, match="DATABASE_PIPELINE_BEGIN=true"):
        run_transaction(lambda s: None, engine=engine, pipeline_commit=True)


def test_statements_run_often_are_prepared_as_without_it(make_engine):
    engine = make_engine(**ON, DATABASE_POOL_SIZE="1", DATABASE_MAX_OVERFLOW="0")
    for value in range(8):  # psycopg prepares a statement on its fifth run (prepare_threshold)

        def read_back(session: Session, value: int = value) -> object:
            return session.execute(text("SELECT :v"), {"v": value}).scalar_one()

        assert run_transaction(read_back, engine=engine) == value
    with engine.connect() as conn:
        prepared = conn.execute(
            text("SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1'")
        )
        assert prepared.scalar_one() == 1
