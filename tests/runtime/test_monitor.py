import logging
import threading
import time

import pytest
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.runtime.engine import create_engine
from atsboost.runtime.monitor import HealthMonitor
from tests.conftest import wait_until


@pytest.fixture
def watched(controlled_server):
    """An engine on the server the test stops, and a monitor checking it every 0.5 s."""
    settings = load_settings(
        controlled_server.environ(
            DATABASE_HEALTH_INTERVAL="0.5", DATABASE_APPLICATION_NAME="atsboost-watched"
        )
    )
    engine = create_engine(settings)
    monitor = HealthMonitor(engine, settings)
    yield engine, monitor
    monitor.stop()
    engine.dispose()


def failed_checks(caplog):
    """The consecutive-failure counts of the failed checks logged: the monitor logs the first two."""
    return [
        r.__dict__["consecutive_failures"]
        for r in caplog.records
        if r.__dict__.get("event") == "health_check_failed"
    ]


def test_down_within_two_intervals_then_healthy_again(controlled_server, watched, caplog):
    engine, monitor = watched
    monitor.start()
    assert wait_until(lambda: monitor.state().status == "healthy", timeout=2)
    with caplog.at_level(logging.WARNING, logger="atsboost.runtime.monitor"):
        try:
            controlled_server.stop()
            assert wait_until(lambda: monitor.state().status == "down", timeout=30)
            down = monitor.state()
            assert down.consecutive_failures >= 2 and down.last_error
            # The state changes before its warning is logged: wait (bounded) for the second line.
            assert wait_until(lambda: len(failed_checks(caplog)) >= 2, timeout=10)
            assert failed_checks(caplog) == [1, 2]  # down at the second failed check, not later
        finally:
            controlled_server.start()
        assert wait_until(lambda: monitor.state().status == "healthy", timeout=30)
        # As above: the state is healthy before the line saying so is logged.
        assert wait_until(lambda: "the database is reachable again" in caplog.text, timeout=10)
    assert "database health check failed (1 in a row)" in caplog.text
    # Recovery is automatic: the application's engine works again without any help.
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


def test_state_reports_pool_usage_and_holds_no_connection(watched):
    engine, monitor = watched
    held = [engine.connect() for _ in range(2)]
    try:
        state = monitor.check()
    finally:
        for conn in held:
            conn.close()
    assert state.status == "healthy"
    assert (state.pool_checked_out, state.pool_capacity) == (2, 5)
    assert state.as_dict()["pool_usage"] == 0.4
    assert engine.pool.checkedout() == 0  # the check used its own connection


def test_high_pool_usage_degrades_and_warns(watched, caplog):
    engine, monitor = watched
    held = [engine.connect() for _ in range(4)]  # 4 of 5: 80 %
    try:
        with caplog.at_level(logging.WARNING, logger="atsboost.runtime.monitor"):
            assert monitor.check().status == "degraded"
            monitor.check()
    finally:
        for conn in held:
            conn.close()
    assert "pool usage has stayed at 4 of 5 connections (80%)" in caplog.text


def test_long_queries_of_this_application_are_reported(controlled_server, caplog):
    settings = load_settings(
        controlled_server.environ(
            DATABASE_LONG_QUERY_SECONDS="0.3", DATABASE_APPLICATION_NAME="atsboost-slow"
        )
    )
    engine = create_engine(settings)
    monitor = HealthMonitor(engine, settings)

    def slow_query():
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(1.5) /* slow */"))

    sleeper = threading.Thread(target=slow_query)
    try:
        sleeper.start()
        time.sleep(0.8)
        with caplog.at_level(logging.WARNING, logger="atsboost.runtime.monitor"):
            monitor.check()
    finally:
        sleeper.join()
        monitor.stop()
        engine.dispose()
    assert "query running for" in caplog.text and "SELECT pg_sleep(1.5) /* slow */" in caplog.text
