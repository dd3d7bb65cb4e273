"""The async twin of test_retry: the same transactions, the same decisions, over SQLAlchemy's asyncio."""

import asyncio
import dataclasses
import logging
import subprocess
import sys
import time

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from atsboost.config.settings import Settings, load_settings
from atsboost.errors import TransactionOutcomeUnknownError
from atsboost.runtime.aio.engine import create_async_engine
from atsboost.runtime.aio.retry import run_transaction, session_scope


def async_engine(settings: Settings) -> AsyncEngine:
    """The async engine of these settings, with room for 8 concurrent tasks."""
    return create_async_engine(dataclasses.replace(settings, pool=dataclasses.replace(settings.pool, size=8)))


@pytest.fixture
def counter(make_engine, make_settings):
    """A one-row counter table; the sync engine is the observer (and the killer of backends)."""
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")
    with observer.begin() as conn:
        conn.execute(text("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)"))
        conn.execute(text("INSERT INTO counter VALUES (1, 0)"))
    return observer, make_settings()


def value(observer: sqlalchemy.Engine) -> int:
    with observer.connect() as conn:
        return int(conn.execute(text("SELECT n FROM counter")).scalar_one())


def terminate(observer: sqlalchemy.Engine, pid: int) -> None:
    with observer.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    time.sleep(0.1)


def run_with(settings: Settings, fn, **options):
    """Run one ``run_transaction`` on a fresh async engine, from sync test code."""

    async def main():
        engine = async_engine(settings)
        try:
            return await run_transaction(fn, engine=engine, **options)
        finally:
            await engine.dispose()

    return asyncio.run(main())


async def own_pid(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def test_concurrent_serializable_updates_all_succeed(counter, caplog):
    observer, settings = counter

    async def increment(session: AsyncSession) -> None:
        n = (await session.execute(text("SELECT n FROM counter WHERE id = 1"))).scalar_one()
        await session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})

    async def main() -> list[BaseException | None]:
        engine = async_engine(settings)

        async def work() -> None:
            for _ in range(10):
                await run_transaction(increment, engine=engine, isolation_level="SERIALIZABLE")

        try:
            return await asyncio.gather(*(work() for _ in range(8)), return_exceptions=True)
        finally:
            await engine.dispose()

    with caplog.at_level(logging.WARNING, logger="atsboost.runtime.retry"):
        outcomes = asyncio.run(main())
    assert outcomes == [None] * 8
    assert value(observer) == 80
    assert "transaction failed with 40001" in caplog.text  # conflicts happened and were retried


def test_a_unique_violation_is_raised_at_once(counter):
    _, settings = counter
    calls = []

    async def insert_duplicate(session: AsyncSession) -> None:
        calls.append(1)
        await session.execute(text("INSERT INTO counter VALUES (1, 0)"))

    with pytest.raises(sqlalchemy.exc.IntegrityError, match="duplicate key"):
        run_with(settings, insert_duplicate)
    assert len(calls) == 1


def test_a_connection_broken_during_commit_has_an_unknown_outcome(counter):
    observer, settings = counter

    async def write_then_lose_the_connection(session: AsyncSession) -> None:
        await session.execute(text("UPDATE counter SET n = n + 1"))
        terminate(observer, await own_pid(session))

    with pytest.raises(TransactionOutcomeUnknownError, match="the connection broke during COMMIT"):
        run_with(settings, write_then_lose_the_connection)


def test_an_idempotent_transaction_is_retried_after_a_broken_commit(counter):
    observer, settings = counter
    attempts = []

    async def set_value(session: AsyncSession) -> None:
        attempts.append(1)
        await session.execute(text("UPDATE counter SET n = 42"))
        if len(attempts) == 1:
            terminate(observer, await own_pid(session))

    run_with(settings, set_value, idempotent=True)
    assert len(attempts) == 2
    assert value(observer) == 42


def test_a_read_only_transaction_survives_a_broken_commit(counter):
    observer, settings = counter

    async def read_then_lose_the_connection(session: AsyncSession) -> int:
        n = int((await session.execute(text("SELECT n FROM counter"))).scalar_one())
        terminate(observer, await own_pid(session))
        return n

    assert run_with(settings, read_then_lose_the_connection, read_only=True) == 0


def test_read_only_transactions_refuse_writes(counter):
    _, settings = counter

    async def write(session: AsyncSession) -> None:
        await session.execute(text("UPDATE counter SET n = 1"))

    with pytest.raises(sqlalchemy.exc.InternalError, match="read-only transaction"):
        run_with(settings, write, read_only=True)


def test_session_scope_commits_or_rolls_back(counter):
    observer, settings = counter

    async def main() -> None:
        engine = async_engine(settings)
        try:
            async with session_scope(engine) as session:
                await session.execute(text("UPDATE counter SET n = 7"))
            with pytest.raises(RuntimeError):
                async with session_scope(engine) as session:
                    await session.execute(text("UPDATE counter SET n = 8"))
                    raise RuntimeError("the block failed")
        finally:
            await engine.dispose()

    asyncio.run(main())
    assert value(observer) == 7


def test_200_transactions_from_8_tasks_across_a_server_restart(controlled_server, caplog):
    settings = load_settings(controlled_server.environ(DATABASE_APPLICATION_NAME="atsboost-async-retry"))
    errors: list[BaseException] = []
    successes: list[float] = []

    async def select_one(session: AsyncSession) -> int:
        return int((await session.execute(text("SELECT 1"))).scalar_one())

    async def main() -> float:
        engine = async_engine(settings)

        async def work() -> None:
            for _ in range(25):
                try:
                    await run_transaction(select_one, engine=engine, read_only=True)
                    successes.append(time.monotonic())
                except Exception as exc:  # every one of these is a failure of the test
                    errors.append(exc)
                await asyncio.sleep(0.02)

        tasks = [asyncio.create_task(work()) for _ in range(8)]
        await asyncio.sleep(0.15)
        await asyncio.to_thread(controlled_server.restart)
        accepting = time.monotonic()
        await asyncio.gather(*tasks)
        await engine.dispose()
        return accepting

    with caplog.at_level(logging.WARNING, logger="atsboost.runtime.retry"):
        accepting = asyncio.run(main())
    assert errors == []
    assert len(successes) == 200
    assert min(t for t in successes if t >= accepting) - accepting < 2.0
    assert "transaction failed with" in caplog.text  # the restart was really felt, and retried


def test_without_the_extra_the_import_error_says_what_to_install():
    code = (
        "import sys; sys.modules['greenlet'] = None\n"
        "try:\n    import atsboost.runtime.aio.retry\n"
        "except ImportError as exc:\n    print(exc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'atsboost[asyncio]'" in out.stdout


def test_killed_backends_are_replaced_without_an_error(counter):
    observer, settings = counter

    async def main() -> tuple[set[int], set[int]]:
        engine = async_engine(settings)
        try:
            held = [await engine.connect() for _ in range(4)]
            pids = {int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()) for conn in held}
            for conn in held:
                await conn.close()
            with observer.connect() as killer:
                killer.execute(
                    text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:p AS int[])) AS pid"),
                    {"p": list(pids)},
                )
            seen = {await run_transaction(own_pid, engine=engine) for _ in range(20)}
            return pids, seen
        finally:
            await engine.dispose()

    pids, seen = asyncio.run(main())
    assert not seen & pids
