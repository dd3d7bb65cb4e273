"""Round trips: the same transactions through a proxy that delays each direction by 0, 1 or 5 ms.

On a network, round trips dominate: the proxy counts them, and the time per
transaction shows what each costs. Every variant is measured in the same rounds.
"""

from __future__ import annotations

import statistics

from benchlib import overhead
from benchlib.common import Row, interleave, per_call, rows_from
from benchlib.proxy import delay_proxy

DELAY = 0.001
COUNTED = 100  # transactions whose round trips are counted, per variant
VARIANTS = [
    overhead.FLOOR,
    "SQLAlchemy Core, QueuePool",
    "SQLAlchemy Core, pool_pre_ping=True",
    "atsboost engine, Core (production)",
    "SQLAlchemy ORM Session.begin()",
    "atsboost run_transaction (production)",
    "atsboost run_transaction (development: leak detection on)",
    "atsboost run_transaction (transaction pool mode, statement timeout)",
    overhead.TIMED,
    overhead.RAW_PIPELINED,
    f"atsboost engine, Core (production, {overhead.PIPELINED})",
    f"atsboost run_transaction (production, {overhead.PIPELINED})",
    f"atsboost run_transaction (transaction pool mode, statement timeout, {overhead.PIPELINED})",
    overhead.INSERT_PLAIN,
    overhead.INSERT_OURS,
    f"{overhead.INSERT_OURS} ({overhead.PIPELINED})",
    f"{overhead.INSERT_OURS}, pipeline_commit=True ({overhead.PIPELINED})",
]


def run(url: str, *, iterations: int, rounds: int, delays: tuple[float, ...] = (DELAY,)) -> list[Row]:
    """Each delay in turn (seconds each way); ``iterations`` is for 1 ms, fewer at longer delays."""
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    overhead.prepare(libpq)
    rows: list[Row] = []
    for delay in delays:
        scaled = max(10, int(iterations * DELAY / max(delay, DELAY)))
        rows += _at(url, libpq, delay, iterations=scaled, rounds=rounds)
    return rows


def _at(url: str, libpq: str, delay: float, *, iterations: int, rounds: int) -> list[Row]:
    with delay_proxy(libpq, delay) as proxy, overhead.variants(proxy.url(url), proxy.url(libpq)) as calls:
        chosen = {name: calls[name] for name in VARIANTS}
        trips = {}
        for name, call in chosen.items():
            call()  # the first checkout connects; its round trips are not a transaction's
            before = proxy.round_trips
            for _ in range(20):
                call()
            trips[name] = (proxy.round_trips - before) / 20
        figures = interleave(
            {n: per_call(c, iterations=iterations) for n, c in chosen.items()}, rounds=rounds
        )
    case = f"latency ({delay * 1000:g} ms each way)"
    rows = rows_from(case, figures, baseline=overhead.FLOOR, unit="us", digits=0)
    for row in rows:
        row.extra["round_trips"] = round(trips[row.variant], 2)
        row.extra["ms_per_round_trip"] = round(
            statistics.median(figures[row.variant]) / 1000 / trips[row.variant], 2
        )
    return rows
