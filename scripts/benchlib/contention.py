"""Contention: 64 threads on a pool of 5 (production's size for 2 CPUs), short transactions.

Throughput is only half the story: SQLAlchemy's QueuePool lets the thread that
returns a connection take it straight back, so some threads wait for seconds. Each
trial reports transactions per second, the checkouts that waited over 1 s, and the
spread of transactions per thread (min, max, and the largest distance from the mean).
Variants run in interleaved, rotated trials.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

import sqlalchemy
from psycopg_pool import ConnectionPool

from benchlib import overhead
from benchlib.common import Row, interleave_trials, rows_from
from benchlib.engines import atsboost_engine

THREADS = 64
POOL_SIZE = 5
BASELINE = "psycopg_pool"


class Trial:
    """The figures of one timed trial of one variant."""

    def __init__(self, per_thread: list[int], long_waits: int, elapsed: float) -> None:
        self.per_thread = per_thread
        self.long_waits = long_waits
        self.tps = sum(per_thread) / elapsed

    @property
    def spread(self) -> float:
        """The largest distance of a thread's count from the mean, as a fraction of the mean."""
        mean = statistics.mean(self.per_thread)
        return max(abs(n - mean) for n in self.per_thread) / mean if mean else 1.0


def run(url: str, *, seconds: float, rounds: int) -> list[Row]:
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    overhead.prepare(libpq)
    sized = {
        "DATABASE_POOL_SIZE": str(POOL_SIZE),
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_POOL_TIMEOUT": "30",
    }
    ours = atsboost_engine(url, "production", **sized)
    plain = sqlalchemy.create_engine(url, pool_size=POOL_SIZE, max_overflow=0, pool_timeout=30)
    pool = ConnectionPool(libpq, min_size=POOL_SIZE, max_size=POOL_SIZE, timeout=30, open=True)
    variants: dict[str, Callable[[], None]] = {
        BASELINE: lambda: overhead.pool_transaction(pool),
        "SQLAlchemy QueuePool, Core": lambda: overhead.core(plain),
        "atsboost engine, Core": lambda: overhead.core(ours),
        "atsboost run_transaction": lambda: overhead.retried(ours),
    }
    try:
        figures, trials = interleave_trials(
            list(variants), lambda name: _trial(variants[name], seconds), rounds=rounds
        )
    finally:
        ours.dispose()
        plain.dispose()
        pool.close()
    rows = rows_from("contention (64 threads, pool of 5)", figures, baseline=BASELINE, unit="tx/s", digits=0)
    for row in rows:
        done = trials[row.variant]
        row.extra["waits_over_1s"] = sum(t.long_waits for t in done)
        row.extra["tx_per_thread_min"] = min(min(t.per_thread) for t in done)
        row.extra["tx_per_thread_max"] = max(max(t.per_thread) for t in done)
        row.extra["max_distance_from_mean"] = f"{max(t.spread for t in done):.0%}"
    return rows


def _trial(transaction: Callable[[], None], seconds: float) -> Trial:
    """64 threads run ``transaction`` in a loop for ``seconds``; a wait is a transaction's whole time."""
    counts = [0] * THREADS
    long_waits = [0] * THREADS
    start = threading.Barrier(THREADS + 1)
    deadline = [0.0]
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        start.wait()
        try:
            while time.monotonic() < deadline[0]:
                began = time.monotonic()
                transaction()
                if time.monotonic() - began > 1.0:
                    long_waits[index] += 1
                counts[index] += 1
        except Exception as exc:  # a failed transaction ends the trial: its figures would mean nothing
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + seconds
    started = time.monotonic()
    start.wait()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} thread(s) failed; the first: {failures[0]}") from failures[0]
    return Trial(counts, sum(long_waits), time.monotonic() - started)
