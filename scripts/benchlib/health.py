"""The health report against the size of the catalog: a few tables, then thousands with indexes."""

from __future__ import annotations

import statistics

import psycopg

from atsboost.health import report
from benchlib.common import Row
from benchlib.engines import atsboost_engine


def run(url: str, *, tables: int, repeats: int) -> list[Row]:
    rows = [_measure(url, repeats, "atsboost.health.report(engine), atsboost's schema only")]
    _add_tables(url, tables)
    rows.append(
        _measure(url, repeats, f"atsboost.health.report(engine), {tables:,} more tables with 2 indexes")
    )
    return rows


def _measure(url: str, repeats: int, variant: str) -> Row:
    engine = atsboost_engine(url, "testing")
    try:
        report(engine)  # connect once first
        runs = [report(engine) for _ in range(repeats)]
    finally:
        engine.dispose()
    seconds = [r.seconds * 1000 for r in runs]
    missing = {note for r in runs for note in r.notes if "timed out" in note or "skipped" in note}
    return Row(
        "health report",
        variant,
        round(statistics.median(seconds), 1),
        "ms",
        round(min(seconds), 1),
        round(max(seconds), 1),
        extra={
            "sections_incomplete": len(missing),
            "largest_tables": len(runs[-1].largest_tables),
            "tables_listed": len(runs[-1].tables),
        },
    )


def _add_tables(url: str, count: int) -> None:
    """Create ``count`` tables, each with a primary key and one more index, 200 to a transaction."""
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(
            f"""
            DO $$ BEGIN
              FOR i IN 1..{int(count)} LOOP
                EXECUTE format('CREATE TABLE bench_catalog_%s (id bigint PRIMARY KEY, v int, note text)', i);
                EXECUTE format('CREATE INDEX bench_catalog_%s_v ON bench_catalog_%s (v)', i, i);
                IF i % 200 = 0 THEN COMMIT; END IF;
              END LOOP;
            END $$"""
        )
