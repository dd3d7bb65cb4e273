"""Shared measuring helpers: interleaved rounds, medians with ranges, and the result row.

Every comparison runs its variants in the same rounds, one after another in an order
that rotates from round to round (ABC, BCA, CAB, ...). A ratio is computed inside each
round, against the baseline measured in that same round, and reported as the median of
the rounds with its range: a machine that slows down for a moment moves one round's
figures together instead of one variant's.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar


class Throughput(Protocol):
    """A timed trial: what it measured, in transactions per second."""

    tps: float


TrialT = TypeVar("TrialT", bound=Throughput)


@dataclass
class Row:
    """One measured figure of one variant: median and range over rounds, and its ratio to a baseline."""

    case: str
    variant: str
    median: float
    unit: str = "us"
    low: float | None = None
    high: float | None = None
    ratio: float | None = None
    ratio_low: float | None = None
    ratio_high: float | None = None
    baseline: str | None = None
    extra: dict[str, float | int | str] = field(default_factory=dict)


def rotated(names: list[str], round_number: int) -> list[str]:
    """The variants in this round's order: each round starts one further along."""
    shift = round_number % len(names)
    return names[shift:] + names[:shift]


def interleave(variants: Mapping[str, Callable[[], float]], *, rounds: int) -> dict[str, list[float]]:
    """Run every variant once per round, in rotated order; return each one's figure per round."""
    names = list(variants)
    figures: dict[str, list[float]] = {name: [] for name in names}
    for number in range(rounds):
        for name in rotated(names, number):
            figures[name].append(variants[name]())
    return figures


def per_call(fn: Callable[[], object], *, iterations: int) -> Callable[[], float]:
    """A measurement: the median time of one call of ``fn`` over ``iterations`` calls, in microseconds."""

    def measure() -> float:
        times = []
        for _ in range(iterations):
            started = time.perf_counter_ns()
            fn()
            times.append((time.perf_counter_ns() - started) / 1000)
        return statistics.median(times)

    return measure


def wall_ms(fn: Callable[[], object]) -> Callable[[], float]:
    """A measurement: the wall time of one call of ``fn``, in milliseconds."""

    def measure() -> float:
        started = time.perf_counter()
        fn()
        return (time.perf_counter() - started) * 1000

    return measure


def rows_from(
    case: str,
    figures: dict[str, list[float]],
    *,
    baseline: str | None,
    unit: str,
    digits: int = 1,
) -> list[Row]:
    """Turn per-round figures into rows: median and range, and per-round ratios to ``baseline``."""
    rows = []
    for name, values in figures.items():
        middle, low, high = statistics.median(values), min(values), max(values)
        row = Row(case, name, round(middle, digits), unit, round(low, digits), round(high, digits))
        if baseline is not None:
            ratios = ratios_to(values, figures[baseline])
            row.ratio = round(statistics.median(ratios), 3)
            row.ratio_low, row.ratio_high = round(min(ratios), 3), round(max(ratios), 3)
            row.baseline = baseline
        rows.append(row)
    return rows


def ratios_to(values: list[float], baseline: list[float]) -> list[float]:
    """Round-by-round ratios of ``values`` to the baseline measured in the same rounds."""
    return [value / base for value, base in zip(values, baseline, strict=True) if base]


def ratio_row(case: str, name: str, values: list[float], baseline: list[float], baseline_name: str) -> Row:
    """A row that is only a ratio: ``values`` against ``baseline``, round by round."""
    ratios = ratios_to(values, baseline)
    middle = statistics.median(ratios)
    return Row(
        case,
        name,
        round(middle, 3),
        "x",
        round(min(ratios), 3),
        round(max(ratios), 3),
        round(middle, 3),
        round(min(ratios), 3),
        round(max(ratios), 3),
        baseline_name,
    )


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def interleave_trials(
    names: list[str], run_trial: Callable[[str], TrialT], *, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[TrialT]]]:
    """Interleave throughput trials: each variant's tx/s per round, and every trial kept for its details."""
    trials: dict[str, list[TrialT]] = {name: [] for name in names}

    def measure(name: str) -> Callable[[], float]:
        def trial() -> float:
            result = run_trial(name)
            trials[name].append(result)
            return result.tps

        return trial

    return interleave({name: measure(name) for name in names}, rounds=rounds), trials
