"""atsboost's figures in prometheus_client's multi-process mode (gunicorn and other pre-fork servers).

There the worker that answers a scrape cannot read the other workers' memory:
prometheus_client keeps each worker's figures in files under
``PROMETHEUS_MULTIPROC_DIR`` and ``MultiProcessCollector`` adds them up. A custom
collector would show the scraping worker alone, so here every figure goes to
prometheus_client's own metrics as it is recorded (a listener of the registry),
under the same names and labels as the collector's. The gauges (connections,
waiting checkouts, the monitor's state) are refreshed every ``interval`` seconds
by a thread in each worker; connections sum over live workers, the monitor's
state is the worst any of them sees. A process that forks (the master) stops
counting in the live gauges: they are the workers' sums.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from prometheus_client import Counter, Gauge, Histogram, Metric, multiprocess
from prometheus_client.registry import Collector

from atsboost.metrics.histogram import SECONDS
from atsboost.metrics.prometheus import METRICS
from atsboost.metrics.registry import Registry

_STATUSES = ("healthy", "degraded", "down", "unknown")


class Mirror:
    """Writes one process's figures into prometheus_client's multi-process files."""

    def __init__(self, source: Registry, interval: float = 1.0) -> None:
        self._source = source
        self._interval = interval
        self._stop = threading.Event()
        self._seen: set[str] = set()
        self._forked_children = False  # a pre-fork server's master: its pools serve no request
        # Held by every write; a fork waits for it, so no child inherits prometheus_client's lock held.
        self._writing = threading.Lock()
        self._counters = _counters()
        self._histograms = _histograms()
        self._gauges = _gauges()
        source.listen(self)
        self._start_thread()
        ref = weakref.ref(self)
        os.register_at_fork(
            before=functools.partial(_forking, ref, before=True),
            after_in_parent=functools.partial(_forking, ref, before=False),
            after_in_child=functools.partial(_forked, ref),
        )

    def stop(self) -> None:
        """Stop writing figures and refreshing gauges."""
        self._stop.set()
        self._source.unlisten(self)

    def counted(self, pool: str | None, figure: str, label: str | None, n: int) -> None:
        """Add ``n`` to the matching counter."""
        found = self._counters.get(figure)
        if found is None:
            return
        counter, labels = found
        if figure == "invalidated":
            label = "invalidated"
        values = [v for v in (pool, label) if v is not None][: len(labels)]
        with self._writing:
            (counter.labels(*values) if labels else counter).inc(n)

    def observed(self, pool: str | None, figure: str, value: float) -> None:
        """Record ``value`` in the matching histogram."""
        histogram = self._histograms.get(figure)
        if histogram is not None:
            with self._writing:
                (histogram.labels(pool) if pool is not None else histogram).observe(value)

    def refresh(self) -> None:
        """Set this worker's gauges from the live pools (zero for pools gone since)."""
        pools = self._source.snapshot()["pools"]
        with self._writing:
            if self._forked_children:
                return
            for name in self._seen - pools.keys():
                self._set_pool(name, {}, None)
            for name, pool in pools.items():
                self._set_pool(name, pool, pool["monitor"])
        self._seen = set(pools)

    def _set_pool(self, name: str, pool: dict[str, Any], monitor: dict[str, Any] | None) -> None:
        connections, limit, waiting, status, failures = self._gauges
        for state in ("checked_out", "idle"):
            connections.labels(name, state).set(pool.get(state, 0))
        limit.labels(name).set(pool.get("capacity", 0))
        waiting.labels(name).set(pool.get("waiting", 0))
        for state in _STATUSES:
            status.labels(name, state).set(1 if monitor is not None and monitor["status"] == state else 0)
        failures.labels(name).set(monitor["consecutive_failures"] if monitor is not None else 0)

    def _start_thread(self) -> None:
        if self._stop.is_set():
            return
        thread = threading.Thread(target=self._run, name="atsboost-prometheus-gauges", daemon=True)
        thread.start()

    def _run(self) -> None:
        while True:
            self.refresh()
            if self._stop.wait(self._interval):
                return


def _forking(ref: weakref.ReferenceType[Mirror], *, before: bool) -> None:
    """Around a fork: hold the write lock, so no write is half done in the child; then let go.

    The parent is a pre-fork server's master (gunicorn with preload_app): its pools
    serve no request, so its live gauges leave the sums, which are then the workers' alone.
    """
    mirror = ref()
    if mirror is None:
        return
    if before:
        mirror._writing.acquire()
        return
    if not mirror._forked_children:
        mirror._forked_children = True
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # its live gauge files go
    mirror._writing.release()


def _forked(ref: weakref.ReferenceType[Mirror]) -> None:
    """In a forked worker: let go of the lock, and refresh its own gauges (the thread did not fork)."""
    mirror = ref()
    if mirror is not None:
        mirror._forked_children = False  # a worker, even when its master had forked others before it
        mirror._writing.release()
        mirror._start_thread()


def _counters() -> dict[str, tuple[Counter, list[str]]]:
    def counter(name: str) -> tuple[Counter, list[str]]:
        documentation, labels = METRICS[name]
        return Counter(name, documentation, labels, registry=None), labels

    closed = counter("atsboost_pool_connections_closed")
    return {
        "timeouts": counter("atsboost_pool_timeouts"),
        "opened": counter("atsboost_pool_connections_opened"),
        "closed": closed,
        "invalidated": closed,
        "validations": counter("atsboost_pool_validations"),
        "leaks": counter("atsboost_pool_leaks"),
        "fenced": counter("atsboost_pool_primaries_fenced"),
        "transactions": counter("atsboost_transactions"),
        "retries": counter("atsboost_transaction_retries"),
        "migrations_applied": counter("atsboost_migrations_applied"),
    }


def _histograms() -> dict[str, Histogram]:
    def histogram(name: str) -> Histogram:
        documentation, labels = METRICS[name]
        return Histogram(name, documentation, labels, buckets=SECONDS, registry=None)

    return {
        "wait_seconds": histogram("atsboost_pool_wait_seconds"),
        "migration_duration_seconds": histogram("atsboost_migration_duration_seconds"),
        "migration_lock_wait_seconds": histogram("atsboost_migration_lock_wait_seconds"),
    }


def _gauges() -> tuple[Gauge, Gauge, Gauge, Gauge, Gauge]:
    # Connections and waits add up over live workers; the monitor's state is the worst any sees.
    def gauge(name: str, mode: Literal["livesum", "livemax"]) -> Gauge:
        documentation, labels = METRICS[name]
        return Gauge(name, documentation, labels, registry=None, multiprocess_mode=mode)

    return (
        gauge("atsboost_pool_connections", "livesum"),
        gauge("atsboost_pool_max_connections", "livesum"),
        gauge("atsboost_pool_waiting", "livesum"),
        gauge("atsboost_health_status", "livemax"),
        gauge("atsboost_health_consecutive_failures", "livemax"),
    )


class FilesCollector(Collector):
    """prometheus_client's ``MultiProcessCollector``, less the empty files that make it fail.

    A worker creates its file before it sizes it; a scrape in that moment, or
    after the worker was killed in it (the file stays), makes
    ``MultiProcessCollector`` raise and lose every worker's figures
    (prometheus/client_python#1199). An empty file holds no figure, so it is
    left out; the rest is prometheus_client's public ``merge``.
    """

    def __init__(self, path: str) -> None:
        self._path = Path(path)

    def collect(self) -> Iterable[Metric]:
        """Merge every worker's file that holds anything."""
        files = []
        for name in self._path.glob("*.db"):
            with contextlib.suppress(FileNotFoundError):  # a dead worker's live gauges are removed
                if name.stat().st_size > 0:
                    files.append(str(name))
        return multiprocess.MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call,no-any-return]
