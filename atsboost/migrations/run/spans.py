"""A span per revision applied or reverted, when tracing is on (``atsboost.metrics.otel``).

Alembic runs the pending revisions in one call and reports each only when it is
done (``on_version_apply``), so a revision's span starts when the run announces
it and ends at that callback, or with the error that stopped it. The SQL spans of
OpenTelemetry's SQLAlchemy instrumentation sit beside it, under the same parent.
"""

from __future__ import annotations

from atsboost import metrics
from atsboost.metrics.tracing import Span
from atsboost.migrations.results import Revision


class RevisionSpans:
    """The span of the revision under way, at most one at a time."""

    def __init__(self) -> None:
        self._open: Span | None = None

    def begin(self, revision: Revision, *, upgrade: bool) -> None:
        """Start ``revision``'s span (ending one left open)."""
        self.end()
        self._open = metrics.tracing.start(
            "atsboost.migration",
            {
                "db.system.name": "postgresql",
                "atsboost.migration.revision": revision.id,
                "atsboost.migration.description": revision.message,
                "atsboost.migration.direction": "upgrade" if upgrade else "downgrade",
            },
        )

    def end(self, error: BaseException | None = None) -> None:
        """End the open span: the revision is done, or ``error`` stopped it (rolled back)."""
        span, self._open = self._open, None
        if span is not None:
            metrics.tracing.end(span, error)
