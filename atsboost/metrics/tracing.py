"""Spans around ``run_transaction``, each migration revision and each health report, once a tracer is set.

atsboost traces nothing by itself: ``atsboost.metrics.otel.instrument()`` hands
OpenTelemetry's tracer to ``atsboost.metrics.tracing`` (a ``Tracing``). Until then
``span()`` returns a span that records nothing, so the runtime pays one call for it.
The ``Span`` protocol is the part of OpenTelemetry's span atsboost uses, so an
OpenTelemetry span is one as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

AttributeValue = str | bool | int | float | Sequence[str]
Attributes = Mapping[str, AttributeValue]


class Span(Protocol):
    """What atsboost does with a span: attributes, events, and the error that ended it."""

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set one attribute."""
        ...

    def add_event(self, name: str, attributes: Attributes | None = None) -> None:
        """Add a timestamped event (a retried attempt)."""
        ...


class Tracer(Protocol):
    """Makes spans: as the current span for a block, or started now and ended later."""

    def current(self, name: str, attributes: Attributes) -> AbstractContextManager[Span]:
        """Return a block's span, the current span inside it; an escaping exception marks it failed."""
        ...

    def start(self, name: str, attributes: Attributes) -> Span:
        """Start a span under the current one, ended by ``end`` (a revision between Alembic's callbacks)."""
        ...

    def end(self, span: Span, error: BaseException | None = None) -> None:
        """End a span from ``start``, marked failed by ``error`` when one is given."""
        ...


class _NoSpan:
    """The span of an untraced process: it records nothing."""

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Record nothing."""

    def add_event(self, name: str, attributes: Attributes | None = None) -> None:
        """Record nothing."""


NO_SPAN: Span = _NoSpan()
# The block of an untraced process: entered and left with no work, whatever it wraps.
NO_BLOCK: AbstractContextManager[Span] = nullcontext(NO_SPAN)


class Tracing:
    """Where atsboost's spans go: nowhere, until a tracer is set."""

    def __init__(self) -> None:
        self.tracer: Tracer | None = None

    def use(self, tracer: Tracer | None) -> None:
        """Send atsboost's spans to ``tracer`` from now on (None: stop tracing)."""
        self.tracer = tracer

    def span(self, name: str, attributes: Attributes) -> AbstractContextManager[Span]:
        """Return a block's span (current inside the block); a span that records nothing when untraced."""
        tracer = self.tracer
        return NO_BLOCK if tracer is None else tracer.current(name, attributes)

    def start(self, name: str, attributes: Attributes) -> Span:
        """Start a span that ``end`` ends; a span that records nothing when untraced."""
        tracer = self.tracer
        return NO_SPAN if tracer is None else tracer.start(name, attributes)

    def end(self, span: Span, error: BaseException | None = None) -> None:
        """End a span from ``start`` (failed by ``error`` when given)."""
        tracer = self.tracer
        if tracer is not None and span is not NO_SPAN:
            tracer.end(span, error)
