"""atsboost's figures and spans in OpenTelemetry: instruments on a meter, spans from a tracer.

``instrument()`` (once, at startup, after the application has set up its
providers) creates atsboost's instruments and sends its spans to OpenTelemetry;
both use the global providers unless others are given. Counters and gauges are
observable: they read ``snapshot()`` when the SDK collects, so the hot path pays
nothing for them. Histograms take each observation as it is made (a listener).
The names follow OpenTelemetry's database semantic conventions where one exists
(``db.client.connection.*``); docs/observability.md lists them, and the spans.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

try:  # the optional extra; say how to install it
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace
    from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation
    from opentelemetry.trace import Status, StatusCode, TracerProvider
except ImportError as missing:
    raise ImportError(
        f"atsboost's OpenTelemetry support needs opentelemetry-api ({missing}); "
        "install it with: pip install 'atsboost[otel]'"
    ) from missing

from atsboost import metrics
from atsboost.metrics.histogram import SECONDS
from atsboost.metrics.registry import Registry
from atsboost.metrics.tracing import Attributes, Span, Tracing

POOL = "db.client.connection.pool.name"
Figures = Callable[[dict[str, Any]], Iterator[tuple[float, dict[str, str]]]]


def instrument(
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
    *,
    registry: Registry | None = None,
    tracing: Tracing | None = None,
) -> OtelInstrumentation:
    """Send atsboost's figures and spans to OpenTelemetry; a second call replaces the first."""
    source = registry or metrics.registry
    for listener in source.listeners.all:
        if isinstance(listener, OtelInstrumentation):
            listener.uninstrument()
    meter = otel_metrics.get_meter("atsboost", meter_provider=meter_provider)
    tracer = trace.get_tracer("atsboost", tracer_provider=tracer_provider)
    return OtelInstrumentation(source, tracing or metrics.tracing, meter, tracer)


class OtelInstrumentation:
    """atsboost's instruments on one meter, and its spans on one tracer, until ``uninstrument()``."""

    def __init__(self, source: Registry, tracing: Tracing, meter: Meter, tracer: trace.Tracer) -> None:
        self._source = source
        self._tracing = tracing
        self._active = True
        self._histograms = _histograms(meter)
        _observables(meter, self._observe)
        self._tracer = OtelTracer(tracer)
        source.listen(self)
        tracing.use(self._tracer)

    def uninstrument(self) -> None:
        """Stop: no more spans, observations or readings (the meter keeps the instruments, empty)."""
        self._active = False
        self._source.unlisten(self)
        if self._tracing.tracer is self._tracer:
            self._tracing.use(None)

    def counted(self, pool: str | None, figure: str, label: str | None, n: int) -> None:
        """Read at collection time instead (the counters are observable)."""

    def observed(self, pool: str | None, figure: str, value: float) -> None:
        """Record a histogram observation as it is made."""
        histogram = self._histograms.get(figure)
        if histogram is not None:
            histogram.record(value, {POOL: pool} if pool is not None else None)

    def _observe(self, figures: Figures) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            if not self._active:
                return []
            snapshot = self._source.snapshot()
            return [Observation(value, attributes) for value, attributes in figures(snapshot)]

        return callback


class OtelTracer:
    """atsboost's ``Tracer`` over an OpenTelemetry tracer: spans nest under the current context."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def current(self, name: str, attributes: Attributes) -> AbstractContextManager[Span]:
        """Return a block's span, current inside it; an escaping exception is recorded and marks it failed."""
        return self._tracer.start_as_current_span(name, attributes=attributes)

    def start(self, name: str, attributes: Attributes) -> Span:
        """Start a span under the current one."""
        return self._tracer.start_span(name, attributes=attributes)

    def end(self, span: Span, error: BaseException | None = None) -> None:
        """End ``span``; with ``error``, record it and mark the span failed."""
        if not isinstance(span, trace.Span):
            return
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()


def _histograms(meter: Meter) -> dict[str, Histogram]:
    def seconds(name: str, description: str) -> Histogram:
        return meter.create_histogram(
            name, unit="s", description=description, explicit_bucket_boundaries_advisory=list(SECONDS)
        )

    return {
        "wait_seconds": seconds("db.client.connection.wait_time", "Time a checkout waited for a connection."),
        "migration_duration_seconds": seconds("atsboost.migration.duration", "Time to apply one revision."),
        "migration_lock_wait_seconds": seconds(
            "atsboost.migration.lock_wait", "Time spent waiting for the migration lock."
        ),
    }


def _observables(meter: Meter, observe: Callable[[Figures], Any]) -> None:
    """Create the observable instruments: each reads its figures from a snapshot at collection."""
    for kind, name, unit, description, figures in _OBSERVABLES:
        create = getattr(meter, f"create_observable_{kind}")
        create(name, callbacks=[observe(figures)], unit=unit, description=description)


def _per_pool(read: Callable[[dict[str, Any]], Iterator[tuple[float, dict[str, str]]]]) -> Figures:
    def figures(snapshot: dict[str, Any]) -> Iterator[tuple[float, dict[str, str]]]:
        for name, pool in snapshot["pools"].items():
            for value, attributes in read(pool):
                yield value, {POOL: name, **attributes}

    return figures


def _field(key: str) -> Figures:
    return _per_pool(lambda pool: iter([(pool.get(key, 0), {})]))


def _labelled(read: Callable[[dict[str, Any]], dict[str, int]], attribute: str) -> Figures:
    return _per_pool(lambda pool: ((count, {attribute: label}) for label, count in read(pool).items()))


def _monitor(read: Callable[[dict[str, Any]], Iterator[tuple[float, dict[str, str]]]]) -> Figures:
    return _per_pool(lambda pool: read(pool["monitor"]) if pool["monitor"] is not None else iter([]))


def _status(monitor: dict[str, Any]) -> Iterator[tuple[float, dict[str, str]]]:
    for state in ("healthy", "degraded", "down", "unknown"):
        yield (1.0 if monitor["status"] == state else 0.0), {"atsboost.health.status": state}


_OBSERVABLES: list[tuple[str, str, str, str, Figures]] = [
    (
        "up_down_counter",
        "db.client.connection.count",
        "{connection}",
        "Pooled connections by state (used: checked out).",
        _labelled(
            lambda pool: {"used": pool.get("checked_out", 0), "idle": pool.get("idle", 0)},
            "db.client.connection.state",
        ),
    ),
    (
        "up_down_counter",
        "db.client.connection.max",
        "{connection}",
        "Pool size plus overflow.",
        _field("capacity"),
    ),
    (
        "up_down_counter",
        "db.client.connection.pending_requests",
        "{request}",
        "Checkouts waiting for a connection now.",
        _field("waiting"),
    ),
    (
        "counter",
        "db.client.connection.timeouts",
        "{timeout}",
        "Checkouts that gave up after the pool timeout.",
        _field("timeouts"),
    ),
    (
        "counter",
        "atsboost.pool.connections.opened",
        "{connection}",
        "Server connections opened.",
        _field("opened"),
    ),
    (
        "counter",
        "atsboost.pool.connections.closed",
        "{connection}",
        "Connections closed by the pool, by reason.",
        _labelled(lambda pool: {**pool["closed"], "invalidated": pool["invalidated"]}, "atsboost.reason"),
    ),
    (
        "counter",
        "atsboost.pool.validations",
        "{ping}",
        "Idle connections pinged before use.",
        _field("validations"),
    ),
    (
        "counter",
        "atsboost.pool.leaks",
        "{connection}",
        "Connections held past the leak threshold.",
        _field("leaks"),
    ),
    (
        "counter",
        "atsboost.transactions",
        "{transaction}",
        "run_transaction calls finished, by outcome.",
        _labelled(
            lambda pool: {k: v for k, v in pool["transactions"].items() if k != "retries"}, "atsboost.outcome"
        ),
    ),
    (
        "counter",
        "atsboost.transaction.retries",
        "{attempt}",
        "Attempts retried, by the SQLSTATE that failed them.",
        _labelled(lambda pool: pool["transactions"]["retries"], "db.response.status_code"),
    ),
    ("gauge", "atsboost.health.status", "1", "1 for the health monitor's current state.", _monitor(_status)),
    (
        "gauge",
        "atsboost.health.consecutive_failures",
        "{check}",
        "Health checks failed in a row.",
        _monitor(lambda monitor: iter([(monitor["consecutive_failures"], {})])),
    ),
    (
        "counter",
        "atsboost.migrations.applied",
        "{revision}",
        "Revisions applied by this process.",
        lambda snapshot: iter([(snapshot["migrations"]["applied"], {})]),
    ),
]
