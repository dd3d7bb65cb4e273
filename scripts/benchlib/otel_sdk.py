"""OpenTelemetry's SDK, switched on only while one variant runs: what its spans and histograms cost.

atsboost's tracer and listeners are process-wide, and the overhead case times every
variant in one process, so the SDK is switched on around that variant's rounds
alone. Spans go through a BatchSpanProcessor to an exporter that drops them, as a
service's exporter would ship them off the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from atsboost import metrics
from atsboost.metrics.otel import OtelTracer, instrument


class Dropped(SpanExporter):
    """An exporter that ships nothing: the cost measured is atsboost's and the SDK's, not a network's."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@contextmanager
def otel_switch() -> Iterator[Callable[[], AbstractContextManager[None]]]:
    """Yield ``on()``: a context manager under which atsboost reports to OpenTelemetry's SDK."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropped()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentation = instrument(meter_provider, tracer_provider)
    instrumentation.uninstrument()  # on only while the variant that measures it runs
    tracer = OtelTracer(tracer_provider.get_tracer("atsboost"))

    @contextmanager
    def on() -> Iterator[None]:
        metrics.tracing.use(tracer)
        metrics.registry.listen(instrumentation)
        try:
            yield
        finally:
            metrics.registry.unlisten(instrumentation)
            metrics.tracing.use(None)

    try:
        yield on
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
