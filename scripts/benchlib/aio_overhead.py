"""Per-transaction cost in asyncio: a one-row query and its commit, through each async layer.

``atsboost.aio.run_transaction`` and ``session_scope`` against a plain
``AsyncSession.begin()`` on SQLAlchemy's default async engine (the same psycopg
driver, so the difference is atsboost's own), against SQLAlchemy over asyncpg, and
against the two drivers alone on a kept connection: psycopg's ``AsyncConnection``
(the floor) and asyncpg, the speed reference users quote. Every variant runs a
transaction of the same shape: BEGIN, the query, COMMIT. All run on one event
loop, in interleaved rounds.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from atsboost import aio
from benchlib import overhead
from benchlib.common import Row, interleave, ratio_row, rows_from
from benchlib.engines import atsboost_async_engine

FLOOR = "raw psycopg AsyncConnection, kept open (floor)"
ASYNCPG = "raw asyncpg, kept open, in a transaction"
PLAIN = "SQLAlchemy AsyncSession.begin(), psycopg"
RUN_TRANSACTION = "atsboost aio.run_transaction (production)"
PIPELINED = f"atsboost aio.run_transaction (production, {overhead.PIPELINED})"
STATEMENT = text(overhead.QUERY)

Transaction = Callable[[], Awaitable[object]]

# (atsboost variant, what it is compared with): atsboost's own cost, and the distance to the references.
COMPARED = [
    (RUN_TRANSACTION, PLAIN),
    ("atsboost aio.session_scope (production)", PLAIN),
    (RUN_TRANSACTION, ASYNCPG),
    (RUN_TRANSACTION, "SQLAlchemy AsyncSession.begin(), asyncpg"),
    (PIPELINED, RUN_TRANSACTION),
]


def run(url: str, *, iterations: int, rounds: int) -> list[Row]:
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    overhead.prepare(libpq)
    with asyncio.Runner() as runner:
        stack = AsyncExitStack()
        calls = runner.run(stack.enter_async_context(variants(url, libpq)))
        try:
            for call in calls.values():  # open every connection before anything is timed
                runner.run(repeat(call, 50))
            counted = {
                name: overhead.python_calls(lambda call=calls[name]: runner.run(call()))
                for name in (RUN_TRANSACTION, PIPELINED)
            }
            figures = interleave(
                {
                    name: lambda call=call: runner.run(median_us(call, iterations))
                    for name, call in calls.items()
                },
                rounds=rounds,
            )
        finally:
            runner.run(stack.aclose())
    rows = rows_from("asyncio overhead", figures, baseline=FLOOR, unit="us")
    rows += [
        ratio_row("asyncio comparison", ours, figures[ours], figures[other], other)
        for ours, other in COMPARED
    ]
    for row in rows:  # each call also runs an event loop turn: compare the two, not the figures alone
        if row.variant in counted and row.case != "asyncio comparison":
            row.extra["python_calls_with_loop"] = counted[row.variant]
    return rows


@asynccontextmanager
async def variants(url: str, libpq: str) -> AsyncIterator[dict[str, Transaction]]:
    """Every variant as a coroutine function running one transaction; connections closed on exit."""
    async with AsyncExitStack() as stack:
        raw = await psycopg.AsyncConnection.connect(libpq)
        stack.push_async_callback(raw.close)
        fast = await asyncpg.connect(libpq)
        stack.push_async_callback(fast.close)

        def engine(made: AsyncEngine) -> AsyncEngine:
            stack.push_async_callback(made.dispose)
            return made

        plain = engine(create_async_engine(url))
        over_asyncpg = engine(create_async_engine(url.replace("+psycopg", "+asyncpg")))
        ours = engine(atsboost_async_engine(url, "production"))
        pipelined = engine(atsboost_async_engine(url, "production", DATABASE_PIPELINE_BEGIN="true"))
        yield {
            FLOOR: lambda: raw_transaction(raw),
            ASYNCPG: lambda: asyncpg_transaction(fast),
            PLAIN: lambda: orm(plain),
            "SQLAlchemy AsyncSession.begin(), asyncpg": lambda: orm(over_asyncpg),
            "atsboost aio.session_scope (production)": lambda: scoped(ours),
            RUN_TRANSACTION: lambda: retried(ours),
            PIPELINED: lambda: retried(pipelined),
        }


async def repeat(call: Transaction, times: int) -> None:
    for _ in range(times):
        await call()


async def median_us(call: Transaction, iterations: int) -> float:
    """The median time of one transaction over ``iterations``, in microseconds."""
    times = []
    for _ in range(iterations):
        started = time.perf_counter_ns()
        await call()
        times.append((time.perf_counter_ns() - started) / 1000)
    return statistics.median(times)


async def raw_transaction(conn: psycopg.AsyncConnection) -> None:
    await (await conn.execute(overhead.QUERY)).fetchone()
    await conn.commit()


async def asyncpg_transaction(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await conn.fetchval(overhead.QUERY)


async def orm(engine: AsyncEngine) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        (await session.execute(STATEMENT)).scalar()


async def scoped(engine: AsyncEngine) -> None:
    async with aio.session_scope(engine) as session:
        (await session.execute(STATEMENT)).scalar()


async def retried(engine: AsyncEngine) -> None:
    await aio.run_transaction(select_value, engine=engine)


async def select_value(session: AsyncSession) -> object:
    return (await session.execute(STATEMENT)).scalar()
