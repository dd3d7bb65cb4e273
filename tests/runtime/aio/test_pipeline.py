"""DATABASE_PIPELINE_BEGIN on the asyncio engine: BEGIN with the first statement, nothing else changed."""

import asyncio

import pytest
import sqlalchemy
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text

from atsboost.runtime.aio.engine import create_async_engine
from atsboost.runtime.aio.retry import run_transaction
from tests.protocol import async_round_trips, async_trips_of

ON = {"DATABASE_PIPELINE_BEGIN": "true"}


def run(make_settings, check, **overrides):
    """Run ``await check(engine)`` on a pipelined async engine built from the test settings."""

    async def main():
        engine = create_async_engine(make_settings(**ON, **overrides))
        try:
            return await check(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


async def select_and_commit(conn) -> None:
    assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    await conn.commit()


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_a_one_statement_transaction_takes_two_round_trips(make_settings, mode):
    async def check(engine):
        assert engine.url.drivername == "postgresql+atsboost_pipeline"
        async with engine.connect() as conn:
            await conn.commit()  # connected; the connection is now idle
            trips = await async_round_trips(conn, select_and_commit)
            timeout = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
            return trips, timeout

    assert run(make_settings, check, DATABASE_POOL_MODE=mode, DATABASE_STATEMENT_TIMEOUT="250") == (
        2,
        "250ms",
    )


def test_an_error_is_raised_by_the_statement_that_caused_it(make_settings):
    async def check(engine):
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id int PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        async with engine.connect() as conn:
            with pytest.raises(sqlalchemy.exc.IntegrityError, match="duplicate key"):
                await conn.execute(text("INSERT INTO t VALUES (1)"))
            await conn.rollback()
            await conn.execute(text("INSERT INTO t VALUES (2)"))
            await conn.commit()
            return (await conn.execute(text("SELECT array_agg(id ORDER BY id) FROM t"))).scalar_one()

    assert run(make_settings, check) == [1, 2]


def test_isolation_read_only_and_autocommit(make_settings):
    async def check(engine):
        options = {"isolation_level": "SERIALIZABLE", "postgresql_readonly": True}
        async with engine.connect() as conn:
            conn = await conn.execution_options(**options)
            shown = (
                await conn.execute(
                    text(
                        "SELECT current_setting('transaction_isolation'), "
                        "current_setting('transaction_read_only')"
                    )
                )
            ).one()
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            untransacted = (await conn.execute(text("SELECT now() = statement_timestamp()"))).scalar_one()
        read_only = await run_transaction(
            lambda s: _scalar(s, "SHOW transaction_read_only"), engine=engine, read_only=True
        )
        return tuple(shown), untransacted, read_only

    assert run(make_settings, check) == (("serializable", "on"), True, "on")


async def _scalar(session, sql):
    return (await session.execute(text(sql))).scalar_one()


def test_savepoints_server_side_cursors_and_executemany(make_settings):
    table = Table("items", MetaData(), Column("id", Integer, primary_key=True), Column("name", String))

    async def check(engine):
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
        async with engine.connect() as conn:
            await conn.execute(insert(table), [{"id": i, "name": f"n{i}"} for i in range(1, 51)])
            async with conn.begin_nested() as nested:
                await conn.execute(insert(table).values(id=1000, name="gone"))
                await nested.rollback()
            await conn.commit()
        async with engine.connect() as conn:
            streamed = await conn.stream(select(table.c.id).order_by(table.c.id))
            ids = [row.id async for row in streamed]
            await conn.rollback()
            return ids

    assert run(make_settings, check) == list(range(1, 51))


EVENTS = Table("events", MetaData(), Column("id", Integer, primary_key=True), Column("name", String))


def test_a_write_only_transaction_takes_one_round_trip_and_errors_come_at_commit(make_settings):
    async def insert_two(session):
        await session.execute(insert(EVENTS).values(id=1, name="a"))
        await session.execute(insert(EVENTS).values(id=2, name="b"))

    async def check(engine):
        async with engine.begin() as conn:
            await conn.run_sync(EVENTS.metadata.create_all)
        trips = await async_trips_of(
            engine, lambda: run_transaction(insert_two, engine=engine, pipeline_commit=True)
        )
        with pytest.raises(sqlalchemy.exc.IntegrityError, match="duplicate key"):
            await run_transaction(insert_two, engine=engine, pipeline_commit=True)
        async with engine.connect() as conn:
            names = (await conn.execute(select(EVENTS.c.name).order_by(EVENTS.c.id))).scalars().all()
        return trips, names

    assert run(make_settings, check, DATABASE_POOL_SIZE="1", DATABASE_MAX_OVERFLOW="0") == (1, ["a", "b"])
