"""Recovery: restart the server under an 8-thread load; errors surfaced, and time to the first success.

Always on a private embedded server in a temporary directory: it is restarted.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.db import run_transaction
from atsboost.runtime import embedded
from atsboost.runtime.engine import create_engine
from benchlib.common import Row

THREADS = 8


def run(*, before: float, after: float) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="atsboost-bench-") as scratch:
        directory = Path(scratch)
        url = embedded.ensure_running(directory).render_as_string(hide_password=False)
        try:
            return [
                _measure(
                    "atsboost run_transaction(read_only=True)", directory, _atsboost(url), before, after
                ),
                _measure(
                    "SQLAlchemy defaults", directory, _plain(sqlalchemy.create_engine(url)), before, after
                ),
                _measure(
                    "SQLAlchemy pool_pre_ping=True",
                    directory,
                    _plain(sqlalchemy.create_engine(url, pool_pre_ping=True)),
                    before,
                    after,
                ),
            ]
        finally:
            embedded.stop(directory)


def _atsboost(url: str) -> Callable[[], object]:
    engine = create_engine(
        load_settings({"ATSBOOST_ENV": "testing", "DATABASE_URL": url, "DATABASE_POOL_SIZE": str(THREADS)})
    )
    statement = text("SELECT 1")
    return lambda: run_transaction(lambda s: s.execute(statement).scalar(), engine=engine, read_only=True)


def _plain(engine: sqlalchemy.Engine) -> Callable[[], object]:
    statement = text("SELECT 1")

    def call() -> object:
        with engine.begin() as conn:
            return conn.execute(statement).scalar()

    return call


def _measure(variant: str, directory: Path, call: Callable[[], object], before: float, after: float) -> Row:
    errors = [0]
    successes: list[float] = []
    stop = threading.Event()
    lock = threading.Lock()

    def worker() -> None:
        while not stop.is_set():
            try:
                call()
                with lock:
                    successes.append(time.monotonic())
            except Exception:  # an error that reached the application: what we count
                with lock:
                    errors[0] += 1
            time.sleep(0.005)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    time.sleep(before)
    embedded.restart(directory)
    accepting = time.monotonic()
    time.sleep(after)
    stop.set()
    for thread in threads:
        thread.join()
    first = min((t for t in successes if t >= accepting), default=None)
    recovery_ms = round((first - accepting) * 1000, 1) if first is not None else float("nan")
    return Row(
        "recovery", variant, recovery_ms, unit="ms to first success", extra={"errors_surfaced": errors[0]}
    )
