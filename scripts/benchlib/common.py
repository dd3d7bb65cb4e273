"""Shared measuring helpers: timed loops, medians, p99, and the result row."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Row:
    """One measured figure of one variant, and its ratio to the case's baseline."""

    case: str
    variant: str
    median: float
    p99: float | None = None
    unit: str = "us"
    ratio: float | None = None
    baseline: str | None = None
    extra: dict[str, float | int | str] = field(default_factory=dict)


def per_call(
    fn: Callable[[], object], *, iterations: int, rounds: int, warmup: int = 50
) -> tuple[float, float]:
    """Median (of round medians) and p99 of one call, in microseconds."""
    for _ in range(warmup):
        fn()
    medians, samples = [], []
    for _ in range(rounds):
        times = []
        for _ in range(iterations):
            started = time.perf_counter_ns()
            fn()
            times.append((time.perf_counter_ns() - started) / 1000)
        medians.append(statistics.median(times))
        samples.extend(times)
    return statistics.median(medians), percentile(samples, 99)


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def with_ratios(rows: list[Row], baseline: str) -> list[Row]:
    """Fill each row's ratio against the row whose variant is ``baseline``."""
    base = next(r for r in rows if r.variant == baseline)
    for row in rows:
        row.ratio = round(row.median / base.median, 2) if base.median else None
        row.baseline = baseline
    return rows
