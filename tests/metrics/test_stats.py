"""The runtime's figures move as the faults imply: each caused for real on a real server."""

import asyncio
import re
import threading
import time

import pytest
import sqlalchemy
from sqlalchemy import text

from atsboost import metrics, migrations
from atsboost.config.settings import load_settings
from atsboost.errors import TransactionOutcomeUnknownError
from atsboost.metrics import Histogram
from atsboost.runtime.aio.engine import create_async_engine
from atsboost.runtime.aio.retry import run_transaction as run_async
from atsboost.runtime.monitor import HealthMonitor
from atsboost.runtime.pool.metrics import stats_of
from atsboost.runtime.retry import run_transaction
from tests.conftest import wait_until


def name_of(engine):
    """The name the engine's pool's figures carry."""
    stats = stats_of(engine.pool)
    assert stats is not None
    return stats.name


def figures(engine):
    """The engine's pool's figures, as ``atsboost.metrics.snapshot()`` reports them."""
    return metrics.snapshot()["pools"][name_of(engine)]


def select_one(session):
    return session.execute(text("SELECT 1")).scalar_one()


def test_a_histogram_is_cumulative_with_count_and_sum():
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(value)
    assert histogram.snapshot() == {"count": 4, "sum": 3.65, "buckets": {"0.1": 2, "1.0": 3, "+Inf": 4}}


def test_a_restart_moves_retries_invalidations_and_reconnections(make_server_engine, controlled_server):
    engine = make_server_engine(DATABASE_POOL_SIZE="8")
    errors: list[BaseException] = []

    def work():
        for _ in range(25):
            try:
                run_transaction(select_one, engine=engine, read_only=True)
            except Exception as exc:  # each one fails the test
                errors.append(exc)
            time.sleep(0.02)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.15)
    opened_before = figures(engine)["opened"]
    controlled_server.restart()
    for thread in threads:
        thread.join()
    after = figures(engine)
    assert errors == []
    assert after["transactions"]["committed"] == 200 and after["transactions"]["failed"] == 0
    assert sum(after["transactions"]["retries"].values()) >= 1  # the restart cost retries...
    assert after["invalidated"] + after["validations"] >= 1  # ...found dead connections...
    assert after["opened"] > opened_before  # ...and opened new ones
    assert after["checkouts"] >= 200


def test_a_pool_timeout_is_counted_with_its_wait(make_engine):
    engine = make_engine(DATABASE_POOL_SIZE="1", DATABASE_MAX_OVERFLOW="0", DATABASE_POOL_TIMEOUT="1")
    with engine.connect(), pytest.raises(sqlalchemy.exc.TimeoutError):
        engine.connect()
    after = figures(engine)
    assert after["timeouts"] == 1
    assert after["wait_seconds"]["count"] == 2
    assert after["wait_seconds"]["buckets"]["0.5"] == 1  # the first was served at once
    assert after["wait_seconds"]["sum"] >= 1.0  # the second waited its full second
    assert (after["size"], after["checked_out"], after["idle"], after["waiting"]) == (1, 0, 1, 0)


def test_closes_by_idle_timeout_and_lifetime_are_counted(make_engine):
    engine = make_engine(DATABASE_IDLE_TIMEOUT="1")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert wait_until(lambda: figures(engine)["closed"]["idle_timeout"] == 1, timeout=4)
    aging = make_engine(DATABASE_MAX_LIFETIME="1")
    for _ in range(2):
        with aging.connect() as conn:
            conn.execute(text("SELECT 1"))
        time.sleep(1.2)
    assert figures(aging)["closed"]["max_lifetime"] >= 1


def test_validations_and_leaks_are_counted(make_engine):
    engine = make_engine(DATABASE_VALIDATE_AFTER="0.1", DATABASE_LEAK_THRESHOLD="0.3")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    time.sleep(0.2)
    leaked = engine.connect()  # idle for 0.2 s: validated first
    assert figures(engine)["validations"] == 1
    assert wait_until(lambda: figures(engine)["leaks"] == 1, timeout=3)
    leaked.close()


def test_failures_and_unknown_outcomes_are_counted(make_engine):
    engine = make_engine()

    def lose_the_connection(session):
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        session.execute(text("CREATE TEMP TABLE t (x int)"))
        with engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        time.sleep(0.1)

    with pytest.raises(TransactionOutcomeUnknownError):
        run_transaction(lose_the_connection, engine=engine)
    with pytest.raises(sqlalchemy.exc.ProgrammingError):
        run_transaction(lambda session: session.execute(text("SELECT * FROM missing")), engine=engine)
    assert figures(engine)["transactions"] == {
        "committed": 0,
        "failed": 1,
        "outcome_unknown": 1,
        "retries": {},
    }


def test_counters_survive_dispose_and_the_monitor_state_is_reported(make_engine, make_settings):
    engine = make_engine()
    run_transaction(select_one, engine=engine)
    engine.dispose()  # what the monitor does after a failed check
    run_transaction(select_one, engine=engine)
    assert figures(engine)["transactions"]["committed"] == 2
    assert figures(engine)["monitor"] is None
    monitor = HealthMonitor(engine, make_settings(DATABASE_HEALTH_INTERVAL="0.2"))
    monitor.start()
    try:
        assert wait_until(lambda: (figures(engine)["monitor"] or {}).get("status") == "healthy", timeout=3)
        assert figures(engine)["monitor"]["consecutive_failures"] == 0
    finally:
        monitor.stop()
    assert figures(engine)["monitor"] is None


def test_the_async_runtime_reports_its_own_pool(make_settings):
    settings = make_settings()

    async def main():
        engine = create_async_engine(settings)
        try:
            for _ in range(3):
                await run_async(lambda session: session.execute(text("SELECT 1")), engine=engine)
            return name_of(engine.sync_engine)
        finally:
            await engine.dispose()

    name = asyncio.run(main())
    pool = metrics.snapshot()["pools"][name]
    # the async pool's name; "#4" when pools of the same name are still alive in the process
    assert re.search(r" \(async\)(#\d+)?$", name), name
    assert pool["transactions"]["committed"] == 3 and pool["checkouts"] == 3


def test_migrations_and_their_lock_waits_are_counted(make_settings):
    before = metrics.snapshot()["migrations"]
    migrations.upgrade(make_settings())
    after = metrics.snapshot()["migrations"]
    assert after["applied"] - before["applied"] == 2
    assert after["duration_seconds"]["count"] - before["duration_seconds"]["count"] == 2
    assert after["lock_wait_seconds"]["count"] > before["lock_wait_seconds"]["count"]


def test_the_names_say_where_but_never_who(make_settings):
    settings = load_settings(
        {"ATSBOOST_ENV": "testing", "DATABASE_URL": "postgresql://app:s3cret@db.example.com:6543/shop"}
    )
    from atsboost.runtime.engine import create_engine

    engine = create_engine(settings)
    try:
        assert name_of(engine).startswith("shop@db.example.com:6543")
        assert "s3cret" not in str(metrics.snapshot()) and "app" not in name_of(engine)
    finally:
        engine.dispose()


def test_with_metrics_off_the_pool_counts_nothing_and_is_not_reported(make_engine, monkeypatch):
    enrolled = []
    monkeypatch.setattr(metrics.registry, "pool", lambda name: enrolled.append(name))
    engine = make_engine(DATABASE_METRICS="false")
    run_transaction(select_one, engine=engine)
    stats = stats_of(engine.pool)
    assert stats is not None and not stats.enabled
    assert stats.snapshot()["transactions"]["committed"] == 0
    assert enrolled == []  # the pool never entered the registry
