"""atsboost's figures for Prometheus: a collector that reads ``snapshot()`` at each scrape.

``register()`` adds it to prometheus_client's registry (once); serve that registry as
usual (``prometheus_client.start_http_server``, or its ASGI/WSGI app). Under
prometheus_client's multi-process mode (gunicorn) it writes the figures to its
files instead (``prometheus_multiprocess``). Nothing is
recorded twice: between scrapes the runtime keeps its own counters, so the hot path
pays nothing for Prometheus. The names follow Prometheus' conventions: a unit
suffix, ``_total`` on counters, and labels (``pool``, ``state``, ``reason``,
``outcome``, ``sqlstate``) instead of one name per variant. docs/observability.md
lists them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:  # the optional extra; say how to install it
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector
except ImportError as missing:
    raise ImportError(
        f"atsboost's Prometheus metrics need prometheus_client ({missing}); "
        "install it with: pip install 'atsboost[prometheus]'"
    ) from missing

from atsboost import metrics
from atsboost.errors import ConfigurationError
from atsboost.metrics.registry import Registry

# Every metric atsboost exports: name -> (help text, labels). The collector and the
# multi-process mirror (prometheus_multiprocess) both build theirs from here.
METRICS: dict[str, tuple[str, list[str]]] = {
    "atsboost_pool_connections": ("Pooled connections by state.", ["pool", "state"]),
    "atsboost_pool_max_connections": ("Pool size plus overflow.", ["pool"]),
    "atsboost_pool_waiting": ("Checkouts waiting for a connection now.", ["pool"]),
    "atsboost_pool_wait_seconds": ("Time a checkout waited for a connection.", ["pool"]),
    "atsboost_pool_timeouts": ("Checkouts that gave up after the pool timeout.", ["pool"]),
    "atsboost_pool_connections_opened": ("Server connections opened.", ["pool"]),
    "atsboost_pool_connections_closed": ("Connections closed by the pool, by reason.", ["pool", "reason"]),
    "atsboost_pool_validations": ("Idle connections pinged before use.", ["pool"]),
    "atsboost_pool_leaks": ("Connections reported held past the leak threshold.", ["pool"]),
    "atsboost_pool_primaries_fenced": ("Stale primaries refused (split brain), by pool.", ["pool"]),
    "atsboost_transactions": ("run_transaction calls finished, by outcome.", ["pool", "outcome"]),
    "atsboost_transaction_retries": (
        "Attempts retried, by the SQLSTATE that failed them.",
        ["pool", "sqlstate"],
    ),
    "atsboost_health_status": ("1 for the health monitor's current state.", ["pool", "status"]),
    "atsboost_health_consecutive_failures": ("Health checks failed in a row.", ["pool"]),
    "atsboost_migrations_applied": ("Revisions applied by this process.", []),
    "atsboost_migration_duration_seconds": ("Time to apply one revision.", []),
    "atsboost_migration_lock_wait_seconds": ("Time spent waiting for the migration lock.", []),
}


def register(
    registry: CollectorRegistry = REGISTRY, *, multiprocess: bool | None = None, interval: float = 1.0
) -> None:
    """Add atsboost's collector to ``registry`` (prometheus_client's default); a second call does nothing.

    In prometheus_client's multi-process mode (``multiprocess=None``: when its
    ``PROMETHEUS_MULTIPROC_DIR`` is set) each figure is written to its files
    instead, the gauges every ``interval`` seconds, so that ``MultiProcessCollector``
    adds up every worker's (``prometheus_multiprocess``).
    """
    if multiprocess is None:  # prometheus_client's own switch, read as it reads it
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    if multiprocess:
        _mirror(metrics.registry, interval)
        return
    try:
        registry.register(AtsboostCollector())
    except ValueError as exc:  # prometheus_client's word for "these names are registered already"
        if "Duplicated timeseries" not in str(exc):
            raise


def scrape_registry(path: str | None = None) -> CollectorRegistry:
    """Return a registry that adds up every worker's files, for a multi-process ``/metrics`` route.

    ``path``: the files' folder (default: ``PROMETHEUS_MULTIPROC_DIR``, read as
    prometheus_client reads it). A file a worker has not sized yet is skipped,
    so a scrape while a worker starts, or after one was killed then, still answers.
    """
    from atsboost.metrics.prometheus_multiprocess import FilesCollector

    folder = path or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder or not Path(folder).is_dir():
        raise ConfigurationError(
            "PROMETHEUS_MULTIPROC_DIR is not set or not a folder; set it to an empty folder shared by "
            "the workers before they start"
        )
    registry = CollectorRegistry()
    registry.register(FilesCollector(folder))
    return registry


def _mirror(source: Registry, interval: float) -> None:
    from atsboost.metrics.prometheus_multiprocess import Mirror

    if not any(isinstance(listener, Mirror) for listener in source.listeners.all):
        Mirror(source, interval)


class AtsboostCollector(Collector):
    """Every pool's and the migrations' figures, as Prometheus metric families."""

    def __init__(self, source: Registry | None = None) -> None:
        self._source = source or metrics.registry

    def collect(self) -> Iterator[Metric]:
        """Read the figures once and yield them as metric families."""
        snapshot = self._source.snapshot()
        yield from _pool_families(snapshot["pools"])
        yield from _transaction_families(snapshot["pools"])
        yield from _migration_families(snapshot["migrations"])


def _gauge(name: str) -> GaugeMetricFamily:
    documentation, labels = METRICS[name]
    return GaugeMetricFamily(name, documentation, labels=labels)


def _counter(name: str) -> CounterMetricFamily:
    documentation, labels = METRICS[name]
    return CounterMetricFamily(name, documentation, labels=labels)


def _histogram(name: str) -> HistogramMetricFamily:
    documentation, labels = METRICS[name]
    return HistogramMetricFamily(name, documentation, labels=labels)


def _add_histogram(family: HistogramMetricFamily, labels: list[str], figures: dict[str, Any]) -> None:
    family.add_metric(labels, list(figures["buckets"].items()), figures["sum"])


def _pool_families(pools: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    connections = _gauge("atsboost_pool_connections")
    limits = _gauge("atsboost_pool_max_connections")
    waiting = _gauge("atsboost_pool_waiting")
    wait = _histogram("atsboost_pool_wait_seconds")
    timeouts = _counter("atsboost_pool_timeouts")
    opened = _counter("atsboost_pool_connections_opened")
    closed = _counter("atsboost_pool_connections_closed")
    validations = _counter("atsboost_pool_validations")
    leaks = _counter("atsboost_pool_leaks")
    fenced = _counter("atsboost_pool_primaries_fenced")
    for name, pool in pools.items():
        for state in ("checked_out", "idle"):
            connections.add_metric([name, state], pool.get(state, 0))
        limits.add_metric([name], pool.get("capacity", 0))
        waiting.add_metric([name], pool.get("waiting", 0))
        _add_histogram(wait, [name], pool["wait_seconds"])
        timeouts.add_metric([name], pool["timeouts"])
        opened.add_metric([name], pool["opened"])
        for reason, count in {**pool["closed"], "invalidated": pool["invalidated"]}.items():
            closed.add_metric([name, reason], count)
        validations.add_metric([name], pool["validations"])
        leaks.add_metric([name], pool["leaks"])
        fenced.add_metric([name], pool.get("fenced", 0))
    yield from (connections, limits, waiting, wait, timeouts, opened, closed, validations, leaks, fenced)


def _transaction_families(pools: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    done = _counter("atsboost_transactions")
    retries = _counter("atsboost_transaction_retries")
    status = _gauge("atsboost_health_status")
    failures = _gauge("atsboost_health_consecutive_failures")
    for name, pool in pools.items():
        transactions = pool["transactions"]
        for outcome in ("committed", "failed", "outcome_unknown"):
            done.add_metric([name, outcome], transactions[outcome])
        for sqlstate, count in transactions["retries"].items():
            retries.add_metric([name, sqlstate], count)
        monitor = pool["monitor"]
        if monitor is not None:
            for state in ("healthy", "degraded", "down", "unknown"):
                status.add_metric([name, state], 1.0 if monitor["status"] == state else 0.0)
            failures.add_metric([name], monitor["consecutive_failures"])
    yield from (done, retries, status, failures)


def _migration_families(figures: dict[str, Any]) -> Iterator[Metric]:
    applied = _counter("atsboost_migrations_applied")
    applied.add_metric([], figures["applied"])
    duration = _histogram("atsboost_migration_duration_seconds")
    _add_histogram(duration, [], figures["duration_seconds"])
    lock_wait = _histogram("atsboost_migration_lock_wait_seconds")
    _add_histogram(lock_wait, [], figures["lock_wait_seconds"])
    yield from (applied, duration, lock_wait)
