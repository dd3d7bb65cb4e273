"""OpenTelemetry's SDK with its in-memory exporters, wired to atsboost for one test."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from atsboost.metrics.otel import OtelInstrumentation, instrument


@dataclass
class Otel:
    """What an application's OpenTelemetry set-up would export: finished spans and collected metrics."""

    tracer_provider: TracerProvider
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    instrumentation: OtelInstrumentation

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def points(self, metric: str) -> list[dict[str, Any]]:
        """Every data point of ``metric``: attributes and value (count, sum, bounds for a histogram)."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found += [_point(p) for p in item.data.data_points]
        return found


def _point(point: Any) -> dict[str, Any]:
    figures: dict[str, Any] = {"attributes": dict(point.attributes or {})}
    if hasattr(point, "bucket_counts"):
        figures.update(count=point.count, sum=point.sum, bounds=list(point.explicit_bounds))
    else:
        figures["value"] = point.value
    return figures


@pytest.fixture
def otel() -> Iterator[Otel]:
    """atsboost instrumented with a fresh SDK tracer and meter provider; uninstrumented afterwards."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentation = instrument(meter_provider, tracer_provider)
    yield Otel(tracer_provider, exporter, reader, instrumentation)
    instrumentation.uninstrument()
    meter_provider.shutdown()
    tracer_provider.shutdown()
