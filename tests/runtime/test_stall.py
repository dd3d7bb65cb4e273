"""A dead network link, made for real: every wait has its bound, nothing is lost or written twice."""

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time

import pytest
import sqlalchemy
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.errors import TransactionOutcomeUnknownError
from atsboost.runtime.aio.database import AsyncDatabase
from atsboost.runtime.database import Database
from atsboost.runtime.shutdown import shutdown_engine
from tests.conftest import server_binaries, wait_until
from tests.netns import isolated_server, unavailable_reason

pytestmark = [pytest.mark.slow, pytest.mark.one_server]  # the client's bounds, whatever the server

STALL, CONNECT, BUDGET = 4, 3, 6
BOUND = BUDGET + max(STALL, CONNECT)  # the longest a run_transaction call may take, documented


@pytest.fixture(scope="module")
def isolated():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with isolated_server(server_binaries()) as server:
        yield server


@pytest.fixture
def database(isolated):
    settings = load_settings(
        {
            "ATSBOOST_ENV": "testing",
            "DATABASE_URL": isolated.url.render_as_string(hide_password=False),
            "DATABASE_STALL_TIMEOUT": str(STALL),
            "DATABASE_CONNECT_TIMEOUT": str(CONNECT),
            "DATABASE_RETRY_MAX_SECONDS": str(BUDGET),
            "DATABASE_POOL_SIZE": "8",
        }
    )
    database = Database(settings)
    with database.get_engine().begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS ledger"))
        conn.execute(text("CREATE TABLE ledger (worker int, n int, PRIMARY KEY (worker, n))"))
    yield database
    isolated.link(up=True)
    database.dispose()


def test_calls_stay_bounded_and_nothing_is_lost_while_the_link_is_down(isolated, database):
    stop = threading.Event()
    outcomes = []  # (worker, n, seconds, error or None)

    def work(worker):
        n = 0
        while not stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                database.run_transaction(
                    lambda s, w=worker, n=n: s.execute(
                        text("INSERT INTO ledger VALUES (:w, :n)"), {"w": w, "n": n}
                    )
                )
                error = None
            except Exception as exc:
                error = exc
            outcomes.append((worker, n, time.monotonic() - started, error))
            time.sleep(0.05)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    isolated.link(up=False)
    time.sleep(30)
    isolated.link(up=True)
    time.sleep(BOUND + 3)
    stop.set()
    for thread in threads:
        thread.join(BOUND + 5)
    with database.get_engine().connect() as conn:
        stored = {(row.worker, row.n) for row in conn.execute(text("SELECT worker, n FROM ledger"))}
    succeeded = {(w, n) for w, n, _, error in outcomes if error is None}
    unknown = {(w, n) for w, n, _, error in outcomes if isinstance(error, TransactionOutcomeUnknownError)}
    longest = max(seconds for _, _, seconds, _ in outcomes)
    assert longest <= BOUND + 1, longest
    assert succeeded <= stored  # nothing acknowledged was lost
    assert stored - succeeded <= unknown  # whatever else is stored was reported as possibly applied
    assert any(error is not None for *_, error in outcomes)  # the outage was really felt
    last = {worker: error for worker, _, _, error in outcomes}  # each worker's final call
    assert all(error is None for error in last.values()), last  # and every worker recovered


def test_shutdown_is_bounded_while_the_link_is_down(isolated, database):
    engine = database.get_engine()
    running = threading.Thread(
        target=lambda: _swallow(lambda: engine.connect().execute(text("SELECT pg_sleep(30)"))), daemon=True
    )
    running.start()
    time.sleep(0.5)
    isolated.link(up=False)
    report = shutdown_engine(engine, timeout=3)
    assert report.waited_for == 1
    # The cancel cannot cross a dead link: the connection is given up at the deadline, not waited for.
    assert report.abandoned == 1, report


def _swallow(fn):
    try:
        fn()
    except Exception:  # the query dies with the link; that is the point
        return


@pytest.fixture
def observer(isolated):
    """A connection to the isolated server through its Unix socket, which no cut link affects."""
    url = isolated.url.set(host=None, port=None, query={"host": str(isolated.socket_dir), "port": "5432"})
    engine = sqlalchemy.create_engine(url.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def sessions(observer, application):
    with observer.connect() as conn:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a")
        return conn.execute(query, {"a": application}).scalar_one()


def atsboost_threads(before):
    """atsboost's threads alive now that were not in ``before`` (an earlier test's pool may run its own)."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("atsboost") and t not in before)


def held_database(isolated, application):
    return Database(
        load_settings(
            {
                "ATSBOOST_ENV": "testing",
                "DATABASE_URL": isolated.url.render_as_string(hide_password=False),
                "DATABASE_APPLICATION_NAME": application,
                "DATABASE_STALL_TIMEOUT": str(STALL),
                "DATABASE_CONNECT_TIMEOUT": str(CONNECT),
                "DATABASE_HEALTH_MONITOR": "true",
                "DATABASE_POOL_SIZE": "4",
            }
        ),
        before_serving=(),
    )


@pytest.mark.parametrize("run", range(5))
def test_a_shutdown_in_a_dead_link_leaves_no_thread_and_the_server_ends_every_session(
    isolated, observer, run
):
    application = f"atsboost-deadlink-{run}"
    database = held_database(isolated, application)
    before = set(threading.enumerate())
    engine = database.startup()  # the monitor's thread runs too
    release = threading.Event()

    def hold(sql):
        with engine.connect() as conn:
            conn.execute(text(sql))
            release.wait(60)

    holders = [
        threading.Thread(target=_swallow, args=(lambda s=sql: hold(s),))
        for sql in ("SELECT pg_sleep(60)",) * 2
    ]
    holders.append(threading.Thread(target=_swallow, args=(lambda: hold("SELECT 1"),)))  # idle, checked out
    for holder in holders:
        holder.start()
    assert wait_until(lambda: sessions(observer, application) >= 3, timeout=30)
    isolated.link(up=False)
    try:
        report = database.shutdown(timeout=1)
        assert atsboost_threads(before) == []  # no monitor, no cancel at work: shutdown returned after them
        assert report is not None and report.abandoned == 3 and report.terminated == 0  # nothing got through
        # The server ends the sessions itself, by the keepalives and user timeout atsboost set on its side.
        assert wait_until(lambda: sessions(observer, application) == 0, timeout=STALL * 3 + 10)
    finally:
        isolated.link(up=True)
        release.set()
        for holder in holders:
            holder.join(30)


def frozen_mid_check(observer, application):
    """SIGSTOP the server process of a health check whose client then waits for a reply; return its pid.

    A check is a connection of its own each time (``application:health``): SET, SELECT 1,
    the long-query scan, ROLLBACK. Stopped before its ROLLBACK, its client waits on a
    reply; stopped while authenticating or after, it is let go and the next is tried.
    """
    query = text("SELECT pid FROM pg_stat_activity WHERE application_name = :a AND pid <> ALL(:stopped)")
    state = text("SELECT state, query FROM pg_stat_activity WHERE pid = :p")
    stopped: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with observer.connect() as conn:
            for pid in conn.execute(query, {"a": f"{application}:health", "stopped": stopped}).scalars():
                stopped.append(pid)
                with contextlib.suppress(ProcessLookupError):  # a check that ended meanwhile
                    os.kill(pid, signal.SIGSTOP)
                    row = conn.execute(state, {"p": pid}).one_or_none()
                    waiting = row is not None and row.query.startswith(("SET", "SELECT 1", "BEGIN"))
                    if waiting or (row is not None and row.state == "active"):
                        return pid
                    os.kill(pid, signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("no health check was caught in flight")


def test_a_shutdown_ends_the_monitor_s_check_stuck_on_a_dead_link_with_no_verdict(isolated, observer, caplog):
    caplog.set_level(logging.WARNING, "atsboost.runtime.monitor")
    application = "atsboost-stuck-check"
    environ = {
        "ATSBOOST_ENV": "testing",
        "DATABASE_URL": isolated.url.render_as_string(hide_password=False),
        "DATABASE_APPLICATION_NAME": application,
        "DATABASE_STALL_TIMEOUT": str(STALL),
        "DATABASE_HEALTH_MONITOR": "true",
        "DATABASE_HEALTH_INTERVAL": "0.1",  # a check every 0.1 s, one of which is caught in flight
    }
    database = Database(load_settings(environ), before_serving=())
    before = set(threading.enumerate())
    database.startup()
    pid = None
    try:
        pid = frozen_mid_check(observer, application)
        isolated.link(up=False)  # and no reply can come before the stall timeout
        report = database.shutdown(timeout=0.5)
        assert atsboost_threads(before) == []  # its socket shut, the check ended within the shutdown's bound
    finally:
        isolated.link(up=True)
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        database.shutdown(timeout=0.5)  # when the test failed before its own
    assert report is not None and report.waited_for == 0
    # Cut by the shutdown: not a failure of the database's, so the monitor says nothing.
    assert [r.getMessage() for r in caplog.records if r.name == "atsboost.runtime.monitor"] == []


def test_where_the_link_allows_abandoned_sessions_are_ended_through_a_fresh_connection(isolated, observer):
    application = "atsboost-abandoned"
    database = held_database(isolated, application)
    engine = database.startup()
    release = threading.Event()

    def hold():
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            release.wait(60)

    holder = threading.Thread(target=_swallow, args=(hold,))
    holder.start()
    assert wait_until(lambda: sessions(observer, application) >= 1, timeout=30)
    try:
        report = database.shutdown(timeout=0.5)
    finally:
        release.set()
        holder.join(30)
    assert report is not None and report.abandoned == 1
    assert report.terminated == 1  # pg_terminate_backend, through a fresh connection
    assert wait_until(lambda: sessions(observer, application) == 0, timeout=10)


@pytest.mark.parametrize("run", range(5))
def test_an_asyncio_shutdown_in_a_dead_link_leaves_no_task_and_the_server_ends_every_session(
    isolated, observer, run
):
    application = f"atsboost-aio-deadlink-{run}"
    settings = held_database(isolated, application).settings
    database = AsyncDatabase(settings, before_serving=())
    before = set(threading.enumerate())

    async def scenario():
        engine = await database.startup()  # the monitor's task runs too
        release = asyncio.Event()

        async def hold(sql):
            async with engine.connect() as conn:
                await conn.execute(text(sql))
                await release.wait()

        statements = ["SELECT pg_sleep(60)", "SELECT pg_sleep(60)", "SELECT 1"]
        holders = [asyncio.create_task(hold(sql), name=f"holder {n}") for n, sql in enumerate(statements)]
        while await asyncio.to_thread(sessions, observer, application) < 3:
            await asyncio.sleep(0.05)
        isolated.link(up=False)
        try:
            report = await database.shutdown(timeout=1)
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and t not in holders]
            threads = atsboost_threads(before)
        finally:
            release.set()
            await asyncio.wait(holders, timeout=30)
        return report, others, threads

    try:
        report, others, threads = asyncio.run(scenario())
        assert others == [] and threads == []  # nothing of atsboost's runs on once shutdown returned
        assert report is not None and report.abandoned == 3 and report.terminated == 0
        assert wait_until(lambda: sessions(observer, application) == 0, timeout=STALL * 3 + 10)
    finally:
        isolated.link(up=True)
