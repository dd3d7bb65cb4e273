"""A test's database, lent in a transaction or for real, as the plugin's fixtures lend it.

These tests borrow the migrated test database of this suite itself (atsboost's own
Alembic project) through ``TestDatabase``, the object behind ``db_connection``, so
each can look at the database after a borrowing has ended.
"""

import asyncio

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.orm import Session

from atsboost import aio, db
from atsboost.errors import TestDatabaseError

INSERT = text(
    "INSERT INTO subscription_plans (code, name, price_cents, billing_interval)"
    " VALUES (:code, :code, 0, 'month') RETURNING id"
)


def add_plan(session, code):
    return session.execute(INSERT, {"code": code}).scalar_one()


def plans(conn) -> list[str]:
    return list(conn.execute(text("SELECT code FROM subscription_plans ORDER BY code")).scalars())


def test_what_a_test_commits_through_atsboost_db_is_gone_after_it(atsboost_database):
    with atsboost_database.connection() as conn:
        db.run_transaction(lambda session: add_plan(session, "committed"))
        with db.session_scope() as session:
            add_plan(session, "scoped")
        with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
            add_plan(session, "joined")
            session.commit()
        assert plans(conn) == ["committed", "joined", "scoped"]  # one connection: the test sees it all
        assert db.get_engine() is conn.engine
    with atsboost_database.connection() as conn:
        assert plans(conn) == []


def test_an_application_rollback_keeps_what_the_test_put_there(atsboost_database):
    with atsboost_database.connection() as conn:
        test_session = Session(bind=conn, join_transaction_mode="create_savepoint")
        add_plan(test_session, "seeded")
        test_session.flush()  # the test's row, not committed
        with pytest.raises(sqlalchemy.exc.IntegrityError), db.session_scope() as session:
            add_plan(session, "app")
            add_plan(session, "seeded")  # a duplicate: the application's transaction fails
        db.run_transaction(lambda session: add_plan(session, "after"))
        assert plans(conn) == ["after", "seeded"]  # the application's rollback undid only its own rows
        test_session.close()


def test_a_read_only_transaction_refuses_writes_and_leaves_the_test_writable(atsboost_database):
    with atsboost_database.connection() as conn:
        with pytest.raises(sqlalchemy.exc.InternalError, match="read-only transaction"):
            db.run_transaction(lambda session: add_plan(session, "refused"), read_only=True)
        assert db.run_transaction(lambda s: s.execute(text("SELECT 1")).scalar(), read_only=True) == 1
        db.run_transaction(lambda session: add_plan(session, "written"))
        assert plans(conn) == ["written"]


def test_autocommit_inside_a_test_transaction_is_refused_with_the_way_out(atsboost_database):
    with atsboost_database.connection():
        engine = db.get_engine()
        with pytest.raises(TestDatabaseError, match="transactional=False"), engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")


def test_atsboost_db_goes_back_to_its_own_engine_after_the_test(atsboost_database):
    with atsboost_database.connection() as conn:
        lent = conn.engine
        assert db.default.settings is atsboost_database.settings
        assert db.shutdown() is None  # an application's shutdown leaves the lent engine alone
        db.dispose_engine()
        assert db.get_engine() is lent
        assert plans(conn) == []
    assert db.default.settings is not atsboost_database.settings


def test_a_test_marked_not_transactional_commits_for_real_and_is_put_back(atsboost_database):
    with atsboost_database.connection(transactional=False) as conn:
        db.run_transaction(lambda session: add_plan(session, "a"))
        with atsboost_database.engine.connect() as other:  # another connection sees the commit
            assert plans(other) == ["a"]
        assert plans(conn) == ["a"]
    ids = []
    for code in ("b", "c"):
        with atsboost_database.connection(transactional=False) as conn:
            assert plans(conn) == []
            ids.append(add_plan(conn, code))
            versions = conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one()
            assert versions == 1  # the migrations' own rows were put back
            conn.commit()
    assert ids[0] == ids[1]  # each time, the sequence is put back where it stood
    with atsboost_database.connection() as conn:
        assert plans(conn) == []


def test_asyncio_code_gets_the_test_transaction_on_the_test_s_loop(atsboost_database):
    async def scenario():
        async with atsboost_database.async_connection() as conn:

            async def add(session, code):
                await session.execute(INSERT, {"code": code})

            await aio.run_transaction(lambda session: add(session, "async"))
            with pytest.raises(sqlalchemy.exc.IntegrityError):
                await aio.run_transaction(lambda session: add(session, "async"))
            seen = (await conn.execute(text("SELECT array_agg(code) FROM subscription_plans"))).scalar()
            assert aio.get_engine() is conn.engine
        return seen

    assert asyncio.run(scenario()) == ["async"]
    with atsboost_database.connection() as conn:
        assert plans(conn) == []


def test_asyncio_code_marked_not_transactional_commits_for_real_and_is_put_back(atsboost_database):
    async def scenario():
        async with atsboost_database.async_connection(transactional=False):

            async def add(session):
                await session.execute(INSERT, {"code": "x"})

            await aio.run_transaction(add)
        with atsboost_database.engine.connect() as other:
            return plans(other)

    assert asyncio.run(scenario()) == []  # committed, then put back when the test ended


def test_the_fixtures_lend_a_session_whose_commits_stay_in_the_test(db_session):
    add_plan(db_session, "fixture")
    db_session.commit()
    db_session.rollback()
    assert plans(db_session) == ["fixture"]
    with db.session_scope() as session:
        assert plans(session) == ["fixture"]


def test_the_seed_fixture_seeds_inside_the_test(atsboost_seed, db_session):
    assert atsboost_seed.admin_created
    assert plans(db_session) == sorted(atsboost_seed.plans_created)
    with pytest.raises(sqlalchemy.exc.IntegrityError), db.session_scope() as session:
        add_plan(session, "free")  # the application fails on a seeded plan and rolls back
    assert plans(db_session) == sorted(atsboost_seed.plans_created)


@pytest.mark.atsboost_db(transactional=False)
def test_the_marker_gives_the_fixtures_real_commits(db_connection, atsboost_database):
    add_plan(db_connection, "m")
    db_connection.commit()
    with atsboost_database.engine.connect() as other:
        assert plans(other) == ["m"]


def test_a_session_lock_taken_in_a_test_is_released_with_it(atsboost_database):
    with atsboost_database.connection():
        db.run_transaction(lambda session: session.execute(text("SELECT pg_advisory_lock(4242)")))
    with atsboost_database.engine.connect() as other:  # another session: it would wait if still held
        assert other.execute(text("SELECT pg_try_advisory_lock(4242)")).scalar_one()
        other.execute(text("SELECT pg_advisory_unlock(4242)"))
