"""Contention: 64 threads on a pool of 5 (production's size for 2 CPUs), short transactions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy
from psycopg_pool import ConnectionPool, PoolTimeout
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.runtime.engine import create_engine
from benchlib.common import Row, percentile

QUERY = "SELECT value FROM bench_items WHERE id = 1"
THREADS = 64
POOL_SIZE = 5


def run(url: str, *, seconds: float) -> list[Row]:
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    engine = create_engine(
        load_settings(
            {
                "ATSBOOST_ENV": "production",
                "DATABASE_URL": url,
                "DATABASE_DISABLE_SSL": "true",
                "DATABASE_POOL_SIZE": str(POOL_SIZE),
                "DATABASE_POOL_TIMEOUT": "30",
            }
        )
    )
    statement = text(QUERY)

    def ours() -> AbstractContextManager[Any]:
        return engine.connect()

    rows = [
        _measure(
            "atsboost engine",
            ours,
            lambda c: c.execute(statement).scalar(),
            sqlalchemy.exc.TimeoutError,
            seconds,
        )
    ]
    engine.dispose()
    with ConnectionPool(libpq, min_size=POOL_SIZE, max_size=POOL_SIZE, timeout=30, open=True) as pool:
        rows.append(
            _measure(
                "psycopg_pool", pool.connection, lambda c: c.execute(QUERY).fetchone(), PoolTimeout, seconds
            )
        )
    base = rows[1]
    for row in rows:
        row.ratio = round(row.median / base.median, 2) if base.median else None
        row.baseline = base.variant
    return rows


def _measure(
    variant: str,
    checkout: Callable[[], AbstractContextManager[Any]],
    work: Callable[[Any], object],
    timeout_error: type[BaseException],
    seconds: float,
) -> Row:
    waits: list[float] = []
    done = [0]
    timeouts = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        local_waits, count, failed = [], 0, 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                with checkout() as conn:
                    local_waits.append((time.perf_counter() - started) * 1000)
                    work(conn)
                    if hasattr(conn, "commit"):
                        conn.commit()
                count += 1
            except timeout_error:
                failed += 1
        with lock:
            waits.extend(local_waits)
            done[0] += count
            timeouts[0] += failed

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    tps = done[0] / elapsed
    # The row's figure is transactions per second; p99 is the wait for a connection, in ms.
    return Row(
        "contention",
        variant,
        round(tps, 0),
        round(percentile(waits, 99), 2),
        unit="tx/s",
        extra={
            "p99_wait_ms": round(percentile(waits, 99), 2),
            "pool_timeouts": timeouts[0],
            "transactions": done[0],
        },
    )
