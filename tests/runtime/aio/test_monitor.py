"""The async twin of test_monitor: the same conclusions, drawn by a task of the event loop."""

import asyncio
import logging
import time

import pytest
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.runtime.aio.engine import create_async_engine
from atsboost.runtime.aio.monitor import AsyncHealthMonitor
from tests.runtime.test_monitor import failed_checks


async def eventually(condition, timeout: float):
    """Poll ``condition`` every 50 ms on the loop until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


@pytest.fixture
def watched_settings(controlled_server):
    return load_settings(
        controlled_server.environ(
            DATABASE_HEALTH_INTERVAL="0.5", DATABASE_APPLICATION_NAME="atsboost-watched-async"
        )
    )


def test_down_within_two_intervals_then_healthy_again(controlled_server, watched_settings, caplog):
    async def main():
        engine = create_async_engine(watched_settings)
        monitor = AsyncHealthMonitor(engine, watched_settings)
        monitor.start()
        try:
            assert await eventually(lambda: monitor.state().status == "healthy", timeout=2)
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(None, controlled_server.stop)
                assert await eventually(lambda: monitor.state().status == "down", timeout=30)
                down = monitor.state()
                assert down.consecutive_failures >= 2 and down.last_error
                assert failed_checks(caplog) == [1, 2]  # down at the second failed check, not later
            finally:
                await loop.run_in_executor(None, controlled_server.start)
            assert await eventually(lambda: monitor.state().status == "healthy", timeout=30)
            # Recovery is automatic: the application's engine works again without any help.
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
        finally:
            await monitor.stop()
            await engine.dispose()

    with caplog.at_level(logging.WARNING, logger="atsboost.runtime.monitor"):
        asyncio.run(main())
    assert "database health check failed (1 in a row)" in caplog.text
    assert "the database is reachable again" in caplog.text


def test_state_reports_pool_usage_and_holds_no_connection(watched_settings):
    async def main():
        engine = create_async_engine(watched_settings)
        monitor = AsyncHealthMonitor(engine, watched_settings)
        held = [await engine.connect() for _ in range(2)]
        try:
            state = await monitor.check()
        finally:
            for conn in held:
                await conn.close()
            await monitor.stop()
        checked_out = engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
        await engine.dispose()
        return state, checked_out

    state, checked_out = asyncio.run(main())
    assert state.status == "healthy"
    assert (state.pool_checked_out, state.pool_capacity) == (2, 5)
    assert state.as_dict()["pool_usage"] == 0.4
    assert checked_out == 0  # the check used its own connection


def test_high_pool_usage_degrades_and_warns(watched_settings, caplog):
    async def main():
        engine = create_async_engine(watched_settings)
        monitor = AsyncHealthMonitor(engine, watched_settings)
        held = [await engine.connect() for _ in range(4)]  # 4 of 5: 80 %
        try:
            first = await monitor.check()
            await monitor.check()
        finally:
            for conn in held:
                await conn.close()
            await monitor.stop()
            await engine.dispose()
        return first

    with caplog.at_level(logging.WARNING, logger="atsboost.runtime.monitor"):
        assert asyncio.run(main()).status == "degraded"
    assert "pool usage has stayed at 4 of 5 connections (80%)" in caplog.text


def test_long_queries_of_this_application_are_reported(controlled_server, caplog):
    settings = load_settings(
        controlled_server.environ(
            DATABASE_LONG_QUERY_SECONDS="0.3", DATABASE_APPLICATION_NAME="atsboost-slow-async"
        )
    )

    async def main():
        engine = create_async_engine(settings)
        monitor = AsyncHealthMonitor(engine, settings)

        async def slow_query():
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(1.5) /* slow */"))

        sleeper = asyncio.create_task(slow_query())
        try:
            await asyncio.sleep(0.8)
            await monitor.check()
        finally:
            await sleeper
            await monitor.stop()
            await engine.dispose()

    with caplog.at_level(logging.WARNING, logger="atsboost.runtime.monitor"):
        asyncio.run(main())
    assert "query running for" in caplog.text and "SELECT pg_sleep(1.5) /* slow */" in caplog.text
