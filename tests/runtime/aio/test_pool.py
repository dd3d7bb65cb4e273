"""The async engine's pool: the sync pool's idle timeout, validation, fair hand-off and leak reports."""

import asyncio
import logging
import time

import pytest
import sqlalchemy
from sqlalchemy import text

from atsboost.runtime.aio.engine import AsyncEngine, create_async_engine

APP = "atsboost-async-pool"


def run(make_settings, check, **overrides):
    """Run ``await check(engine)`` on an async engine from the test settings plus overrides."""

    async def main():
        engine = create_async_engine(make_settings(DATABASE_APPLICATION_NAME=APP, **overrides))
        try:
            return await check(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def server_connections(observer: sqlalchemy.Engine) -> int:
    with observer.connect() as conn:
        query = text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = :app AND datname = current_database()"
        )
        return int(conn.execute(query, {"app": APP}).scalar_one())


async def pid(conn) -> int:
    return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@pytest.fixture
def observer(make_engine):
    return make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")


def test_the_idle_timeout_closes_idle_server_connections(make_settings, observer):
    async def check(engine: AsyncEngine):
        held = [await engine.connect() for _ in range(3)]
        for conn in held:
            await pid(conn)
        opened = server_connections(observer)
        for conn in held:
            await conn.close()
        await asyncio.sleep(2.5)  # the loop keeps running: its maintenance task reaps
        return opened, server_connections(observer)

    assert run(make_settings, check, DATABASE_IDLE_TIMEOUT="1") == (3, 0)


def test_an_idle_connection_killed_meanwhile_is_replaced_at_checkout(make_settings, observer):
    async def check(engine: AsyncEngine):
        async with engine.connect() as conn:
            first = await pid(conn)
        with observer.connect() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first})
        await asyncio.sleep(0.3)  # idle past DATABASE_VALIDATE_AFTER
        async with engine.connect() as conn:
            return first, await pid(conn)

    first, second = run(make_settings, check, DATABASE_VALIDATE_AFTER="0.1")
    assert second != first


def test_waiting_tasks_are_served_first_come_first_served(make_settings):
    async def check(engine: AsyncEngine):
        served: list[int] = []
        holder = await engine.connect()
        await pid(holder)

        async def want(number: int) -> None:
            async with engine.connect() as conn:
                served.append(number)
                await pid(conn)

        waiting = []
        for number in range(5):
            waiting.append(asyncio.create_task(want(number)))
            await asyncio.sleep(0.05)  # each asks in turn
        await holder.close()
        await asyncio.gather(*waiting)
        return served

    assert run(make_settings, check, DATABASE_POOL_SIZE="1") == [0, 1, 2, 3, 4]


def test_a_waiting_checkout_leaves_the_loop_running_and_times_out(make_settings):
    async def check(engine: AsyncEngine):
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        holder = await engine.connect()
        started = time.monotonic()
        try:
            with pytest.raises(sqlalchemy.exc.TimeoutError):
                await engine.connect()
        finally:
            ticker.cancel()
            await holder.close()
        return time.monotonic() - started, ticks

    waited, ticks = run(make_settings, check, DATABASE_POOL_SIZE="1", DATABASE_POOL_TIMEOUT="1")
    assert 1 <= waited < 3
    assert ticks > 30  # the loop ran other tasks all along


def test_a_task_cancelled_while_waiting_gives_its_turn_back(make_settings):
    async def check(engine: AsyncEngine):
        holder = await engine.connect()
        await pid(holder)

        async def wait_for_one():
            return await engine.connect()

        waiter = asyncio.create_task(wait_for_one())
        await asyncio.sleep(0.1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await holder.close()
        async with asyncio.timeout(2):  # the connection went back to the pool, not to the cancelled task
            async with engine.connect() as conn:
                return await pid(conn)

    assert run(make_settings, check, DATABASE_POOL_SIZE="1", DATABASE_POOL_TIMEOUT="5") > 0


def test_a_leak_report_names_the_coroutine_that_took_the_connection(make_settings, caplog):
    async def hold_it(engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            await pid(conn)
            await asyncio.sleep(1.5)

    with caplog.at_level(logging.WARNING, logger="atsboost.runtime.leaks"):
        run(make_settings, hold_it, DATABASE_LEAK_THRESHOLD="0.5")
    assert "has been checked out for" in caplog.text
    assert "aio/test_pool.py" in caplog.text and "in hold_it" in caplog.text
