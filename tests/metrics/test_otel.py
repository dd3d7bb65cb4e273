"""OpenTelemetry's in-memory exporters receive atsboost's spans and metrics with the documented attributes."""

import asyncio
import re

import pytest
import sqlalchemy.exc
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text

from atsboost import metrics, migrations
from atsboost.config.settings import load_settings
from atsboost.errors import MigrationError
from atsboost.health.connect import report, report_for
from atsboost.metrics.otel import instrument
from atsboost.runtime.aio.engine import create_async_engine
from atsboost.runtime.aio.retry import run_transaction as run_async
from atsboost.runtime.monitor import HealthMonitor
from atsboost.runtime.pool.metrics import stats_of
from atsboost.runtime.retry import run_transaction
from tests.conftest import add_revision, wait_until

# A real serialization failure, raised by the server with its SQLSTATE.
CONFLICT = "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$"


def conflicting_once():
    """A transaction that fails with 40001 on its first attempt and commits on its second."""
    calls = []

    def fn(session):
        calls.append(1)
        if len(calls) == 1:
            session.execute(text(CONFLICT))
        return session.execute(text("SELECT 1")).scalar_one()

    return fn


def stats(engine):
    found = stats_of(engine.pool)
    assert found is not None
    return found


def of_pool(points, engine):
    name = stats(engine).name
    return [p for p in points if p["attributes"].get("db.client.connection.pool.name") == name]


def test_a_retried_transaction_is_one_span_with_each_attempt_as_an_event(otel, make_engine):
    engine = make_engine()
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("GET /orders") as request:
        assert run_transaction(conflicting_once(), engine=engine) == 1
    [span] = otel.spans("atsboost.transaction")
    assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id
    assert span.attributes["atsboost.transaction.outcome"] == "committed"
    assert span.attributes["atsboost.transaction.attempts"] == 2
    assert span.attributes["atsboost.pool"] == stats(engine).name
    assert span.attributes["db.system.name"] == "postgresql"
    [event] = span.events
    assert event.name == "atsboost.transaction.retry"
    assert event.attributes["db.response.status_code"] == "40001"
    assert event.attributes["atsboost.transaction.attempt"] == 1
    assert 0 < event.attributes["atsboost.transaction.backoff_seconds"] <= 0.6
    assert span.status.status_code == StatusCode.UNSET


def test_a_failed_transaction_span_carries_the_error(otel, make_engine):
    engine = make_engine()
    with pytest.raises(sqlalchemy.exc.ProgrammingError):
        run_transaction(lambda session: session.execute(text("SELECT * FROM missing")), engine=engine)
    [span] = otel.spans("atsboost.transaction")
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["atsboost.transaction.outcome"] == "failed"
    assert [e.name for e in span.events] == ["exception"]


def test_sql_spans_of_the_sqlalchemy_instrumentation_nest_inside(otel, make_engine):
    engine = make_engine()
    instrumentor = SQLAlchemyInstrumentor()
    # The instrumentation's declared range stops short of SQLAlchemy 2.1, which it traces all the same.
    instrumentor.instrument(engine=engine, tracer_provider=otel.tracer_provider, skip_dep_check=True)
    try:
        with otel.tracer_provider.get_tracer("app").start_as_current_span("job"):
            run_transaction(conflicting_once(), engine=engine)
    finally:
        instrumentor.uninstrument()
    [transaction] = otel.spans("atsboost.transaction")
    [job] = otel.spans("job")
    sql = [s for s in otel.spans() if s.kind == SpanKind.CLIENT]
    assert len(sql) >= 2  # the failed DO, then the SELECT of the second attempt
    assert {s.parent.span_id for s in sql} == {transaction.context.span_id}
    assert transaction.parent.span_id == job.context.span_id


def test_the_async_runtime_nests_its_span_under_the_task_current_one(otel, make_settings):
    settings = make_settings()
    tracer = otel.tracer_provider.get_tracer("app")

    async def main():
        engine = create_async_engine(settings)
        try:

            async def conflict_then_commit(session, calls=[]):  # noqa: B006
                calls.append(1)
                if len(calls) == 1:
                    await session.execute(text(CONFLICT))
                return 1

            with tracer.start_as_current_span("request"):
                await run_async(conflict_then_commit, engine=engine)
        finally:
            await engine.dispose()

    asyncio.run(main())
    [span] = otel.spans("atsboost.transaction")
    [request] = otel.spans("request")
    assert span.parent.span_id == request.context.span_id
    assert span.attributes["atsboost.transaction.attempts"] == 2
    # the async pool's name; "#2" when a pool of the same name is still alive in the process
    assert re.search(r" \(async\)(#\d+)?$", span.attributes["atsboost.pool"])


def test_each_revision_is_a_span_and_a_failed_one_says_so(otel, make_settings, alembic_project):
    add_revision(alembic_project, "bad01", 'op.execute("SELECT 1/0")')
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))
    with pytest.raises(MigrationError):
        migrations.upgrade(settings)
    spans = otel.spans("atsboost.migration")
    assert [s.attributes["atsboost.migration.revision"] for s in spans] == [
        "055d037ec299",
        "7c1f9a2b4d10",
        "bad01",
    ]
    assert [s.status.status_code for s in spans] == [StatusCode.UNSET, StatusCode.UNSET, StatusCode.ERROR]
    assert {s.attributes["atsboost.migration.direction"] for s in spans} == {"upgrade"}
    assert "division by zero" in spans[-1].events[0].attributes["exception.message"]
    assert [p["count"] for p in otel.points("atsboost.migration.duration")] == [2]
    assert [p["value"] for p in otel.points("atsboost.migrations.applied")] == [
        metrics.snapshot()["migrations"]["applied"]
    ]


def test_a_health_report_is_a_span_reached_or_not(otel, make_engine):
    report(make_engine())
    unreachable = load_settings(
        {"ATSBOOST_ENV": "testing", "DATABASE_URL": "postgresql://app:s3cret@127.0.0.1:1/nowhere"}
    )
    report_for(unreachable)
    reached, missed = otel.spans("atsboost.health.report")
    assert reached.attributes["atsboost.health.reachable"] is True
    assert reached.attributes["atsboost.health.latency_ms"] >= 0
    assert missed.attributes["atsboost.health.reachable"] is False
    assert "s3cret" not in missed.attributes["atsboost.health.database"]


def test_the_pool_figures_are_instruments_with_the_semantic_convention_names(
    otel, make_engine, make_settings
):
    engine = make_engine(DATABASE_POOL_SIZE="3")
    limits = make_settings(DATABASE_POOL_SIZE="3").pool
    for _ in range(3):
        run_transaction(conflicting_once(), engine=engine)
    held = engine.connect()
    engine.connect().close()  # a second connection, idle now
    monitor = HealthMonitor(engine, make_settings(DATABASE_HEALTH_INTERVAL="0.2"))
    monitor.start()
    try:
        assert wait_until(lambda: stats(engine).snapshot()["monitor"]["status"] == "healthy", 3)
        states = {
            p["attributes"]["db.client.connection.state"]: p["value"]
            for p in of_pool(otel.points("db.client.connection.count"), engine)
        }
        assert states == {"used": 1, "idle": 1}
        [capacity] = of_pool(otel.points("db.client.connection.max"), engine)
        assert capacity["value"] == limits.size + limits.max_overflow
        outcomes = {
            p["attributes"]["atsboost.outcome"]: p["value"]
            for p in of_pool(otel.points("atsboost.transactions"), engine)
        }
        assert outcomes == {"committed": 3, "failed": 0, "outcome_unknown": 0}
        [retries] = of_pool(otel.points("atsboost.transaction.retries"), engine)
        assert retries["attributes"]["db.response.status_code"] == "40001" and retries["value"] == 3
        [wait] = of_pool(otel.points("db.client.connection.wait_time"), engine)
        assert wait["count"] == stats(engine).snapshot()["checkouts"]
        assert wait["bounds"][:3] == [0.001, 0.005, 0.01]  # seconds, not the SDK's millisecond default
        status = {
            p["attributes"]["atsboost.health.status"]: p["value"]
            for p in of_pool(otel.points("atsboost.health.status"), engine)
        }
        assert status["healthy"] == 1 and status["down"] == 0
    finally:
        monitor.stop()
        held.close()


def test_uninstrument_stops_spans_and_a_second_instrument_replaces_the_first(otel, make_engine):
    engine = make_engine()
    otel.instrumentation.uninstrument()
    run_transaction(lambda session: 1, engine=engine)
    assert otel.spans() == [] and metrics.tracing.tracer is None
    again = instrument(tracer_provider=otel.tracer_provider)
    replacement = instrument(tracer_provider=otel.tracer_provider)
    try:
        assert [listener for listener in metrics.registry.listeners.all if listener is again] == []
        run_transaction(lambda session: 1, engine=engine)
        assert len(otel.spans("atsboost.transaction")) == 1
    finally:
        replacement.uninstrument()
