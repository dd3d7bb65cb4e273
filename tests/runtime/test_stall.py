"""A dead network link, made for real: every wait has its bound, nothing is lost or written twice."""

import threading
import time

import pytest
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.errors import TransactionOutcomeUnknownError
from atsboost.runtime.database import Database
from atsboost.runtime.shutdown import shutdown_engine
from tests.conftest import server_binaries
from tests.netns import isolated_server, unavailable_reason

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
    started = time.monotonic()
    report = shutdown_engine(engine, timeout=3)
    elapsed = time.monotonic() - started
    assert elapsed < 6, elapsed
    assert report.waited_for == 1


def _swallow(fn):
    try:
        fn()
    except Exception:  # the query dies with the link; that is the point
        return
