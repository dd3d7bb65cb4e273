import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy
from sqlalchemy import text

from atsboost import db
from atsboost.config.settings import get_settings
from atsboost.errors import DatabaseUnavailableError
from atsboost.runtime.shutdown import shutdown_engine
from tests.conftest import wait_until

APP = "atsboost-shutdown"


def our_backends(observer, name=APP):
    with observer.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = :n AND datname = current_database()"
            ),
            {"n": name},
        ).scalar_one()


def backends_exited(observer, name=APP) -> bool:
    """Whether every backend of ``name`` has left pg_stat_activity, waiting up to 10 s.

    A backend leaves it once its process has exited, a moment after its client closed the
    connection; on a busy machine that moment can outlast the client's own exit.
    """
    return wait_until(lambda: our_backends(observer, name) == 0, timeout=10)


def run_in_thread(engine, sql, outcome):
    def work():
        try:
            with engine.connect() as conn:
                outcome.append(conn.execute(text(sql)).scalar())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(0.3)  # the query is running
    return thread


def test_shutdown_waits_for_an_in_flight_query(make_engine):
    engine = make_engine(DATABASE_APPLICATION_NAME=APP)
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")
    outcome: list[object] = []
    thread = run_in_thread(engine, "SELECT 'done' FROM pg_sleep(2)", outcome)
    refused = []
    threading.Timer(0.3, lambda: refused.append(_try_checkout(engine))).start()
    report = shutdown_engine(engine, timeout=5)
    thread.join()
    assert outcome == ["done"]  # the query completed, within the deadline: nothing was cancelled
    assert (report.waited_for, report.cancelled, report.abandoned) == (1, 0, 0)
    assert isinstance(refused[0], DatabaseUnavailableError)  # no new connections while draining
    assert backends_exited(observer)


def _try_checkout(engine):
    try:
        engine.connect().close()
    except Exception as exc:
        return exc
    return None


def test_shutdown_past_its_deadline_cancels_and_still_finishes(make_engine):
    engine = make_engine(DATABASE_APPLICATION_NAME=APP)
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")
    outcome: list[object] = []
    thread = run_in_thread(engine, "SELECT pg_sleep(30)", outcome)
    report = shutdown_engine(engine, timeout=0.5)
    thread.join(60)
    assert not thread.is_alive()  # the 30 s query ended: it was cancelled, not waited for
    assert report.cancelled == 1
    assert isinstance(outcome[0], sqlalchemy.exc.OperationalError)
    assert "canceling statement due to user request" in str(outcome[0])
    assert backends_exited(observer)


def test_process_wide_shutdown_is_idempotent(environ, monkeypatch):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with db.session_scope() as session:
            session.execute(text("SELECT 1"))
        assert db.shutdown(timeout=1) is not None
        assert db.shutdown(timeout=1) is None
    finally:
        db.dispose_engine()
        get_settings.cache_clear()


SERVICE = """
import logging, sys, threading, time
from sqlalchemy import text
from atsboost import db

logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

db.startup(handle_signals=True)

def work():
    while True:
        with db.session_scope() as s:
            s.execute(text("SELECT pg_sleep(0.05)"))

threading.Thread(target=work, daemon=True).start()
print("ready", flush=True)
time.sleep(60)
"""


def test_sigterm_runs_the_graceful_path_and_exits_0(environ, make_engine):
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")
    env = {**environ, "DATABASE_APPLICATION_NAME": APP, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVICE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    assert our_backends(observer) >= 1
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "received SIGTERM: shutting the database layer down" in err
    assert "shutdown: closed every connection" in err
    assert backends_exited(observer)


FORKED = """
import os
from sqlalchemy import text
from atsboost import db

def pid():
    with db.session_scope() as s:
        return s.execute(text("SELECT pg_backend_pid()")).scalar_one()

parent = pid()
child = os.fork()
if child == 0:
    db.after_fork()
    print("child", pid() != parent, flush=True)
    os._exit(0)
os.waitpid(child, 0)
print("parent", pid() == parent, flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork exists only on POSIX systems")
def test_a_forked_worker_uses_its_own_connections(environ):
    out = subprocess.run(
        [sys.executable, "-c", FORKED],
        env={**environ, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split("\n")[:2]) == ["child True", "parent True"]


LEAK_AT_EXIT = """
from sqlalchemy import text
from atsboost import db

held = db.get_engine().connect()  # taken and never given back
held.execute(text("SELECT 1"))
print("holding", flush=True)
"""


def test_at_exit_a_leaked_idle_connection_is_closed_at_once_and_reported(environ, make_engine):
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")
    env = {**environ, "DATABASE_APPLICATION_NAME": APP, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", LEAK_AT_EXIT], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "holding"
    assert "was checked out and never returned (a leak); closing it" in out.stderr
    assert "cancelled" not in out.stderr  # nothing was running, so nothing was cancelled
    assert "did not come back" not in out.stderr  # closed at once, not waited for until the deadline
    assert backends_exited(observer)


def test_an_idle_connection_past_the_deadline_is_not_counted_as_cancelled(make_engine):
    engine = make_engine(DATABASE_APPLICATION_NAME=APP)
    held = engine.connect()
    held.execute(text("SELECT 1"))
    report = shutdown_engine(engine, timeout=0.3)
    assert (report.cancelled, report.abandoned) == (0, 1)
    held.invalidate()
