"""The async twin of test_shutdown: the same sequence, waited for on the event loop."""

import asyncio

import sqlalchemy
from sqlalchemy import text

from atsboost.errors import DatabaseUnavailableError
from atsboost.runtime.aio.engine import create_async_engine
from atsboost.runtime.aio.shutdown import shutdown_async_engine
from tests.runtime.test_shutdown import APP, backends_exited


async def run_query(engine, sql):
    """Run ``sql`` on a connection of ``engine``; return its value, or the error it raised."""
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar()
    except Exception as exc:
        return exc


async def try_checkout(engine):
    try:
        async with engine.connect():
            return None
    except Exception as exc:
        return exc


def test_shutdown_waits_for_an_in_flight_query(make_settings, make_engine):
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")
    engine = create_async_engine(make_settings(DATABASE_APPLICATION_NAME=APP))

    async def main():
        query = asyncio.create_task(run_query(engine, "SELECT 'done' FROM pg_sleep(2)"))
        await asyncio.sleep(0.3)  # the query is running
        shutting = asyncio.create_task(shutdown_async_engine(engine, timeout=5))
        await asyncio.sleep(0.3)
        refused = await try_checkout(engine)
        report = await shutting
        return await query, refused, report

    outcome, refused, report = asyncio.run(main())
    assert outcome == "done"  # the query completed, within the deadline: nothing was cancelled
    assert (report.waited_for, report.cancelled, report.abandoned) == (1, 0, 0)
    assert isinstance(refused, DatabaseUnavailableError)  # no new connections while draining
    assert backends_exited(observer)


def test_shutdown_past_its_deadline_cancels_and_still_finishes(make_settings, make_engine):
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")
    engine = create_async_engine(make_settings(DATABASE_APPLICATION_NAME=APP))

    async def main():
        query = asyncio.create_task(run_query(engine, "SELECT pg_sleep(30)"))
        await asyncio.sleep(0.3)
        report = await shutdown_async_engine(engine, timeout=0.5)
        return await asyncio.wait_for(query, 60), report  # the 30 s query ends: cancelled, not awaited

    outcome, report = asyncio.run(main())
    assert report.cancelled == 1
    assert isinstance(outcome, sqlalchemy.exc.OperationalError)
    assert "canceling statement due to user request" in str(outcome)
    assert backends_exited(observer)


def test_an_idle_connection_past_the_deadline_is_closed_and_counted_as_abandoned(make_settings, make_engine):
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")
    engine = create_async_engine(make_settings(DATABASE_APPLICATION_NAME=APP))

    async def main():
        held = await engine.connect()
        await held.execute(text("SELECT 1"))
        report = await shutdown_async_engine(engine, timeout=0.3)
        await held.invalidate()
        return report

    report = asyncio.run(main())
    assert (report.cancelled, report.abandoned) == (0, 1)
    assert backends_exited(observer)
