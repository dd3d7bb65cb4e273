"""The asyncio facade, atsboost.aio: the twin of test_db, awaited."""

import asyncio
import logging
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import text

from atsboost import aio
from atsboost.aio import AsyncDatabase
from atsboost.config.settings import get_settings, load_settings
from atsboost.errors import DatabaseUnavailableError, MigrationRefusedError
from tests.conftest import assert_waited_within, wait_until
from tests.runtime.test_shutdown import our_backends
from tests.test_db import applied_revisions, bodies


@pytest.fixture
def notes_engine(make_engine):
    engine = make_engine()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)"))
    return engine


@pytest.fixture
def process_wide(monkeypatch):
    """Give the test a fresh process-wide async database, and leave no engine behind."""
    monkeypatch.setattr(aio, "default", AsyncDatabase())
    yield
    asyncio.run(aio.dispose_engine())


@pytest.fixture
def from_environment(environ, monkeypatch, process_wide):
    """The test's database in the process environment, read by the process-wide settings."""
    for name, value in {**environ, "DATABASE_APPLICATION_NAME": "atsboost-test-aio"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def insert(session, body):
    await session.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": body})


def test_session_scope_commits_on_success_and_rolls_back_on_error(notes_engine, from_environment):
    async def main():
        async with aio.session_scope() as session:
            await insert(session, "kept")
        with pytest.raises(RuntimeError, match="boom"):
            async with aio.session_scope() as session:
                await insert(session, "lost")
                raise RuntimeError("boom")

    asyncio.run(main())
    assert bodies(notes_engine) == ["kept"]


def test_get_engine_is_process_wide_and_built_from_the_environment(from_environment):
    async def main():
        engine = aio.get_engine()
        assert aio.get_engine() is engine
        async with aio.session_scope() as session:
            return (await session.execute(text("SELECT current_setting('application_name')"))).scalar_one()

    assert asyncio.run(main()) == "atsboost-test-aio"


def test_the_engine_follows_a_new_event_loop(from_environment, make_engine):
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")

    async def backend_pid():
        return await aio.run_transaction(lambda s: s.scalar(text("SELECT pg_backend_pid()")))

    first = asyncio.run(backend_pid())
    second = asyncio.run(backend_pid())  # the first loop is gone: its connection cannot serve
    assert isinstance(first, int) and isinstance(second, int) and first != second
    # The first loop's connection was closed (its backend exits as soon as it reads the goodbye).
    assert wait_until(lambda: our_backends(observer, "atsboost-test-aio") == 1, timeout=2)


def test_run_transaction_and_the_decorator(notes_engine, from_environment):
    @aio.transaction(idempotent=True)
    async def add(session, body):
        await insert(session, body)
        return body.upper()

    async def main():
        await aio.run_transaction(lambda session: insert(session, "one"))
        return await add("two")

    assert asyncio.run(main()) == "TWO"
    assert bodies(notes_engine) == ["one", "two"]


def test_startup_migrates_to_head_in_a_worker_thread(make_settings, make_engine, process_wide, caplog):
    async def main():
        await aio.startup(make_settings())
        return threading.current_thread().name

    with caplog.at_level(logging.INFO, logger="atsboost.migrations"):
        loop_thread = asyncio.run(main())
    assert applied_revisions(make_engine()) == ["7c1f9a2b4d10"]
    threads = {
        record.threadName for record in caplog.records if record.name.startswith("atsboost.migrations")
    }
    assert threads and loop_thread not in threads  # the loop kept serving while Alembic ran


def test_startup_can_be_told_not_to_migrate(make_settings, make_engine, process_wide):
    asyncio.run(aio.startup(make_settings(DATABASE_MIGRATE_ON_STARTUP="false")))
    assert applied_revisions(make_engine()) == []


def test_startup_fails_fast_when_the_production_gate_is_closed(make_settings, make_engine, process_wide):
    settings = make_settings(
        ATSBOOST_ENV="production", DATABASE_DISABLE_SSL="true", MIGRATION_REQUIRE_FORCE="true"
    )
    with pytest.raises(MigrationRefusedError, match=r"refusing to apply 2 revision\(s\) in production"):
        asyncio.run(aio.startup(settings))
    assert applied_revisions(make_engine()) == []


def test_startup_waits_for_a_database_that_is_still_starting(controlled_server, process_wide):
    settings = load_settings(
        controlled_server.environ(DATABASE_CONNECT_TIMEOUT="15", DATABASE_MIGRATE_ON_STARTUP="false")
    )
    controlled_server.stop()
    threading.Timer(1.0, controlled_server.start).start()

    async def main():
        started = time.monotonic()
        engine = await aio.startup(settings)
        waited = time.monotonic() - started
        async with engine.connect() as conn:
            return waited, (await conn.execute(text("SELECT 1"))).scalar_one()

    waited, one = asyncio.run(main())
    assert waited >= 0.9 and one == 1


def test_startup_gives_up_after_the_connect_timeout(unused_tcp_port, process_wide, caplog):
    settings = load_settings(
        {
            "ATSBOOST_ENV": "testing",
            "DATABASE_URL": f"postgresql://app:pw@127.0.0.1:{unused_tcp_port}/db",
            "DATABASE_CONNECT_TIMEOUT": "1",
        }
    )
    with pytest.raises(
        DatabaseUnavailableError, match=rf"cannot connect to .*app:\*\*\*@127.0.0.1:{unused_tcp_port}"
    ):
        asyncio.run(aio.startup(settings))
    assert_waited_within(caplog, seconds=1.0)


def test_health_state_from_the_monitor_and_without_it(make_settings, process_wide):
    async def main():
        await aio.startup(make_settings(DATABASE_HEALTH_MONITOR="true", DATABASE_HEALTH_INTERVAL="0.2"))
        monitored = await aio.health_state()  # known from startup on: the first check ran there
        monitor = asyncio.all_tasks()
        await aio.dispose_engine()
        await aio.startup(make_settings(DATABASE_MIGRATE_ON_STARTUP="false"))  # no monitor: a live check
        return monitored, {task.get_name() for task in monitor}, await aio.health_state()

    monitored, tasks, checked = asyncio.run(main())
    assert monitored["status"] == "healthy" and monitored["pool_capacity"] == 5
    assert "atsboost-health-monitor" in tasks
    assert checked["status"] == "healthy" and checked["latency_ms"] is not None


def test_shutdown_is_idempotent_and_stops_the_monitor(make_settings, process_wide):
    async def main():
        await aio.startup(make_settings(DATABASE_HEALTH_MONITOR="true", DATABASE_MIGRATE_ON_STARTUP="false"))
        first = await aio.shutdown(timeout=1)
        second = await aio.shutdown(timeout=1)
        return first, second, {task.get_name() for task in asyncio.all_tasks()}

    first, second, tasks = asyncio.run(main())
    assert first is not None and first.abandoned == 0
    assert second is None
    assert "atsboost-health-monitor" not in tasks


def test_importing_connects_to_nothing(unused_tcp_port):
    code = "import atsboost.aio; print('imported')"
    env = {"ATSBOOST_ENV": "production", "DATABASE_URL": f"postgresql://u:p@127.0.0.1:{unused_tcp_port}/x"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "imported"


def test_a_second_startup_keeps_one_monitor_and_shutdown_stops_it(make_settings, process_wide):
    settings = make_settings(DATABASE_HEALTH_MONITOR="true", DATABASE_HEALTH_INTERVAL="0.2")

    def monitors():
        return [t for t in asyncio.all_tasks() if t.get_name() == "atsboost-health-monitor" and not t.done()]

    async def main():
        await aio.startup(settings)
        await aio.startup(settings)
        running = len(monitors())
        await aio.shutdown(timeout=5)
        return running, len(monitors())

    assert asyncio.run(main()) == (1, 0)


def test_startups_racing_on_one_loop_start_one_monitor(make_settings, process_wide):
    """The sync twin locks its lifecycle; on one loop the check and the start have no await between them."""
    settings = make_settings(DATABASE_HEALTH_MONITOR="true", DATABASE_HEALTH_INTERVAL="0.2")

    async def main():
        await asyncio.gather(*(aio.startup(settings) for _ in range(3)))
        running = [
            t for t in asyncio.all_tasks() if t.get_name() == "atsboost-health-monitor" and not t.done()
        ]
        await aio.shutdown(timeout=5)
        return len(running)

    assert asyncio.run(main()) == 1
