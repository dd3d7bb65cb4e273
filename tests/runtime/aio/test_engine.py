"""The async engine from settings: the sync engine's connection parameters, and its round trips."""

import asyncio

import pytest
import sqlalchemy
from sqlalchemy import text

from atsboost.runtime.aio.engine import AsyncEngine, create_async_engine
from atsboost.runtime.aio.retry import run_transaction
from tests.protocol import async_round_trips

POOLER = {"DATABASE_POOL_MODE": "transaction", "DATABASE_STATEMENT_TIMEOUT": "250"}


def run(make_settings, check, **overrides):
    """Run ``await check(engine)`` on an async engine built from the test settings plus overrides."""

    async def main():
        engine = create_async_engine(make_settings(**overrides))
        try:
            return await check(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_connections_carry_application_name_and_statement_timeout(make_settings):
    async def check(engine: AsyncEngine):
        async with engine.connect() as conn:
            return [
                (await conn.execute(text(f"SHOW {name}"))).scalar_one()
                for name in ("application_name", "statement_timeout")
            ]

    assert run(
        make_settings, check, DATABASE_APPLICATION_NAME="async-app", DATABASE_STATEMENT_TIMEOUT="1500"
    ) == [
        "async-app",
        "1500ms",
    ]


def test_pool_size_and_timeout_come_from_the_settings(make_settings):
    async def check(engine: AsyncEngine):
        first = await engine.connect()
        try:
            async with engine.connect():
                pass
        finally:
            await first.close()

    with pytest.raises(sqlalchemy.exc.TimeoutError, match="QueuePool limit of size 1 overflow 0"):
        run(make_settings, check, DATABASE_POOL_SIZE="1", DATABASE_POOL_TIMEOUT="1")


async def select_and_commit(conn) -> None:
    (await conn.execute(text("SELECT 1"))).scalar_one()
    await conn.commit()


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_a_statement_timeout_costs_no_round_trip(make_settings, mode):
    async def check(engine: AsyncEngine):
        async with engine.connect() as conn:
            await conn.commit()  # connected; the connection is now idle
            return await async_round_trips(conn, select_and_commit)

    pipelined = make_settings().runtime.pipeline_begin  # DATABASE_PIPELINE_BEGIN (test_pipeline)
    assert run(make_settings, check, DATABASE_POOL_MODE=mode, DATABASE_STATEMENT_TIMEOUT="250") == (
        2 if pipelined else 3
    )


def test_behind_a_transaction_pooler_the_timeout_applies_in_every_transaction(make_settings):
    async def check(engine: AsyncEngine):
        async with engine.connect() as conn:
            assert (await conn.execute(text("SHOW statement_timeout"))).scalar_one() == "250ms"
            await conn.commit()
            with pytest.raises(sqlalchemy.exc.OperationalError, match="statement timeout"):
                await conn.execute(text("SELECT pg_sleep(2)"))
            await conn.rollback()
            await conn.execute(text("SET statement_timeout = 0"))  # session level, as a pooler's next client
            await conn.commit()
            return (await conn.execute(text("SHOW statement_timeout"))).scalar_one()

    assert (
        run(make_settings, check, DATABASE_POOL_MODE="transaction", DATABASE_STATEMENT_TIMEOUT="250")
        == "250ms"
    )


def test_isolation_level_and_read_only_survive_the_combined_begin(make_settings):
    async def check(engine: AsyncEngine):
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="SERIALIZABLE")
            level = (await conn.execute(text("SHOW transaction_isolation"))).scalar_one()

        async def read_only(session):
            return (await session.execute(text("SHOW transaction_read_only"))).scalar_one()

        return level, await run_transaction(read_only, engine=engine, read_only=True)

    assert run(make_settings, check, **POOLER) == ("serializable", "on")
