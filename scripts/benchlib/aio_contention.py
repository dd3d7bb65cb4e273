"""Contention in asyncio: 1,000 tasks on a pool of 5, short transactions, a 2 s pool timeout.

Each task runs transactions in a loop for the trial's length; a transaction's time
is mostly its wait for a connection. SQLAlchemy's default async pool lets the task
that returns a connection take it straight back while others wait, so some tasks
wait for seconds, and with a pool timeout they fail. Each trial reports
transactions per second, the 50th and 99th percentile of a transaction's time, the
pool timeouts, and the tasks that finished no transaction at all. psycopg_pool's
async pool, first come first served, is the reference. Variants run in
interleaved, rotated trials on one event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import psycopg_pool
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from benchlib import aio_overhead, overhead
from benchlib.common import Row, interleave_trials, percentile, rows_from
from benchlib.engines import atsboost_async_engine

TASKS = 1000
POOL_SIZE = 5
POOL_TIMEOUT = 2.0
BASELINE = "SQLAlchemy default async pool (AsyncAdaptedQueuePool), Core"
STATEMENT = text(overhead.QUERY)
TIMEOUTS = (sqlalchemy.exc.TimeoutError, psycopg_pool.PoolTimeout)


class Trial:
    """The figures of one timed trial of one variant."""

    def __init__(self, per_task: list[list[float]], timeouts: int, elapsed: float) -> None:
        self.times = [t for task in per_task for t in task]
        self.starved = sum(1 for task in per_task if not task)
        self.timeouts = timeouts
        self.tps = len(self.times) / elapsed


def run(url: str, *, seconds: float, rounds: int) -> list[Row]:
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    overhead.prepare(libpq)
    with asyncio.Runner() as runner:
        engines, pool, variants = runner.run(_variants(url, libpq))
        try:
            figures, trials = interleave_trials(
                list(variants), lambda name: runner.run(_trial(variants[name], seconds)), rounds=rounds
            )
        finally:
            runner.run(_close(engines, pool))
    case = f"asyncio contention ({TASKS} tasks, pool of {POOL_SIZE})"
    rows = rows_from(case, figures, baseline=BASELINE, unit="tx/s", digits=0)
    for row in rows:
        done = trials[row.variant]
        row.extra["p50_ms"] = round(max(percentile(t.times, 50) for t in done) * 1000, 1)
        row.extra["p99_ms"] = round(max(percentile(t.times, 99) for t in done) * 1000, 1)
        row.extra["pool_timeouts"] = sum(t.timeouts for t in done)
        row.extra["tasks_without_a_transaction"] = sum(t.starved for t in done)
    return rows


async def _variants(
    url: str, libpq: str
) -> tuple[list[AsyncEngine], psycopg_pool.AsyncConnectionPool, dict[str, Callable[[], Awaitable[object]]]]:
    sized = {
        "DATABASE_POOL_SIZE": str(POOL_SIZE),
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_POOL_TIMEOUT": str(round(POOL_TIMEOUT)),
    }
    ours = atsboost_async_engine(url, "production", **sized)
    plain = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0, pool_timeout=POOL_TIMEOUT)
    pool = psycopg_pool.AsyncConnectionPool(
        libpq, min_size=POOL_SIZE, max_size=POOL_SIZE, timeout=POOL_TIMEOUT, open=False
    )
    await pool.open(wait=True)
    variants: dict[str, Callable[[], Awaitable[object]]] = {
        BASELINE: lambda: _core(plain),
        "psycopg_pool AsyncConnectionPool": lambda: _pooled(pool),
        "atsboost aio engine, Core": lambda: _core(ours),
        "atsboost aio.run_transaction": lambda: aio_overhead.retried(ours),
    }
    return [ours, plain], pool, variants


async def _close(engines: list[AsyncEngine], pool: psycopg_pool.AsyncConnectionPool) -> None:
    for engine in engines:
        await engine.dispose()
    await pool.close()


async def _core(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        (await conn.execute(STATEMENT)).scalar()


async def _pooled(pool: psycopg_pool.AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await (await conn.execute(overhead.QUERY)).fetchone()


async def _trial(transaction: Callable[[], Awaitable[object]], seconds: float) -> Trial:
    """TASKS tasks run ``transaction`` in a loop for ``seconds``; a pool timeout is counted, not fatal."""
    per_task: list[list[float]] = [[] for _ in range(TASKS)]
    timeouts = [0]
    deadline = time.monotonic() + seconds

    async def task(times: list[float]) -> None:
        while time.monotonic() < deadline:
            began = time.monotonic()
            try:
                await transaction()
            except TIMEOUTS:
                timeouts[0] += 1
                continue
            times.append(time.monotonic() - began)

    started = time.monotonic()
    await asyncio.gather(*(task(times) for times in per_task))
    return Trial(per_task, timeouts[0], time.monotonic() - started)
