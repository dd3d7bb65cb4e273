import os
import threading
import time

import pytest
import sqlalchemy
from sqlalchemy import text

from tests.conftest import wait_until


def count_backends(observer, application_name):
    with observer.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": application_name},
        ).scalar_one()


def backend_pid(engine):
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_idle_connections_are_closed_on_the_server(make_engine):
    name = "atsboost-test-idle"
    engine = make_engine(DATABASE_IDLE_TIMEOUT="1", DATABASE_APPLICATION_NAME=name)
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-test-observer")
    held = [engine.connect() for _ in range(3)]
    for conn in held:
        conn.execute(text("SELECT 1"))
    for conn in held:
        conn.close()
    assert count_backends(observer, name) == 3
    assert engine.pool.checkedin() == 3

    # Nobody touches the engine: the reaper alone must release the server slots.
    assert wait_until(lambda: count_backends(observer, name) == 0, timeout=4)
    assert engine.pool.checkedin() == 0

    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    assert count_backends(observer, name) == 1


def test_busy_connections_are_kept(make_engine):
    name = "atsboost-test-busy"
    engine = make_engine(DATABASE_IDLE_TIMEOUT="1", DATABASE_APPLICATION_NAME=name)
    first = backend_pid(engine)
    for _ in range(15):  # 1.5 s of steady use, never idle for a whole second
        assert backend_pid(engine) == first
        time.sleep(0.1)


def test_an_expired_connection_is_never_handed_out(make_engine):
    engine = make_engine(DATABASE_IDLE_TIMEOUT="1")
    pool = engine.pool
    first = backend_pid(engine)
    # Stop the reaper so only the checkout path can notice the expiry.
    pool._stopped.set()
    time.sleep(1.3)
    assert backend_pid(engine) != first


def test_reaper_releases_the_pool_when_the_engine_is_dropped(make_engine):
    engine = make_engine(DATABASE_IDLE_TIMEOUT="1")
    backend_pid(engine)
    pool = engine.pool
    engine.dispose()
    assert pool._stopped.is_set()
    # The new pool has its own reaper, started on its first check-in.
    backend_pid(engine)
    assert engine.pool is not pool
    assert engine.pool.idle_timeout == 1
    assert engine.pool._reaper_pid == os.getpid()


def test_waiters_are_served_first_come_first_served(make_engine):
    """A thread that returns a connection cannot take it straight back past those waiting."""
    engine = make_engine(DATABASE_POOL_SIZE="1", DATABASE_POOL_TIMEOUT="10")
    order = []

    def take(name):
        with engine.connect():
            order.append(name)

    held = engine.connect()
    first = threading.Thread(target=take, args=("first waiter",))
    first.start()
    time.sleep(0.2)
    second = threading.Thread(target=take, args=("second waiter",))
    second.start()
    time.sleep(0.2)
    held.close()
    take("the thread that just returned it")
    first.join()
    second.join()
    assert order == ["first waiter", "second waiter", "the thread that just returned it"]


def test_a_waiter_times_out_with_sqlalchemys_error(make_engine):
    engine = make_engine(DATABASE_POOL_SIZE="1", DATABASE_POOL_TIMEOUT="0")
    with (
        engine.connect(),
        pytest.raises(sqlalchemy.exc.TimeoutError, match="QueuePool limit of size 1 overflow 0"),
    ):
        engine.connect()


def test_a_connection_past_its_maximum_lifetime_is_replaced_without_an_error(make_engine):
    engine = make_engine(DATABASE_MAX_LIFETIME="1", DATABASE_IDLE_TIMEOUT="3600")
    with engine.connect() as conn:
        first = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() == first  # still young
    time.sleep(1.1)
    with engine.connect() as conn:
        replaced = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    assert replaced != first
