"""The FastAPI integration in-process, on the plugin's test transaction; tests/test_docs_recipes.py runs
it under uvicorn from the wheel, with faults."""

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from sqlalchemy import text

from atsboost import aio, db
from atsboost.integrations.fastapi import (
    AsyncSessionDep,
    AsyncTransaction,
    AsyncTransactionDep,
    Lifespan,
    SessionDep,
    TransactionDep,
    exception_handlers,
    health_router,
    lifespan,
    sync_lifespan,
)
from atsboost.runtime.aio.engine import create_async_engine

INSERT = text(
    "INSERT INTO subscription_plans (code, name, price_cents, billing_interval) VALUES (:c, :c, 0, 'month')"
)
COUNT = text("SELECT count(*) FROM subscription_plans")


def make_app() -> FastAPI:
    app = FastAPI(exception_handlers=exception_handlers())
    app.include_router(health_router())
    app.include_router(health_router(sync=True, prefix="/sync"))

    @app.post("/plans/{code}", status_code=201)
    async def create(code: str, session: AsyncSessionDep):
        await session.execute(INSERT, {"c": code})
        if code == "refused":
            raise HTTPException(409, "refused after the insert")
        return {"code": code}

    @app.put("/plans/{code}")
    async def put(code: str, transaction: AsyncTransactionDep):
        async def save(session):
            await session.execute(INSERT, {"c": code})

        await transaction(save)
        return {"code": code}

    @app.post("/sync/plans/{code}", status_code=201)
    def create_sync(code: str, session: SessionDep, transaction: TransactionDep):
        session.execute(INSERT, {"c": f"{code}-session"})
        transaction(lambda other: other.execute(INSERT, {"c": f"{code}-transaction"}))
        return {"code": code}

    return app


@pytest.fixture
def client():
    transport = httpx.ASGITransport(app=make_app())
    return httpx.AsyncClient(transport=transport, base_url="http://app")


@pytest.mark.asyncio
async def test_a_route_s_session_commits_and_a_failed_route_saves_nothing(async_db_session, client):
    async with client:
        assert (await client.post("/plans/kept")).status_code == 201
        assert (await client.post("/plans/refused")).status_code == 409
        assert (await client.put("/plans/retried")).status_code == 200
    rows = await async_db_session.execute(text("SELECT code FROM subscription_plans ORDER BY code"))
    assert list(rows.scalars()) == ["kept", "retried"]


@pytest.mark.asyncio
async def test_liveness_and_readiness_read_the_database_s_state(async_db_session, db_session, client):
    async with client:
        assert (await client.get("/healthz")).json() == {"status": "alive"}
        ready = await client.get("/readyz")
        sync_ready = await client.get("/sync/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "healthy"
    assert sync_ready.status_code == 200 and sync_ready.json()["status"] == "healthy"


@pytest.mark.asyncio
async def test_sync_routes_take_the_sync_session_and_transaction(db_session, client):
    async with client:
        assert (await client.post("/sync/plans/s")).status_code == 201
    assert db_session.execute(COUNT).scalar_one() == 2


@pytest.mark.asyncio
async def test_an_unreachable_database_answers_503_with_retry_after(make_settings, unused_tcp_port, client):
    settings = make_settings(
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{unused_tcp_port}/x",
        DATABASE_RETRY_ATTEMPTS="1",
        DATABASE_CONNECT_TIMEOUT="1",
    )
    engine = create_async_engine(settings)
    try:
        with aio.default.bound(engine, settings):
            async with client:
                answer = await client.put("/plans/nowhere")
    finally:
        await engine.dispose()
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json() == {"detail": "the database cannot answer now; try again shortly"}


@pytest.mark.asyncio
async def test_the_transaction_dependency_can_be_overridden(client):
    calls = []

    class Recorded(AsyncTransaction):
        async def __call__(self, fn, **options):
            calls.append(options)

    app = client._transport.app
    app.dependency_overrides[AsyncTransaction] = Recorded
    async with client:
        assert (await client.put("/plans/x")).status_code == 200
    assert calls == [{}]


@pytest.mark.asyncio
@pytest.mark.parametrize("chosen", ["asyncio", "sync"])
async def test_the_lifespan_starts_the_database_before_serving_and_shuts_it_down(
    chosen, make_settings, make_engine
):
    settings = make_settings()
    database, async_database = db.Database(settings), aio.AsyncDatabase(settings)
    own = Lifespan(
        asyncio=chosen == "asyncio", sync=chosen == "sync", database=database, async_database=async_database
    )
    app = FastAPI(lifespan=own)
    async with app.router.lifespan_context(app):
        with make_engine().connect() as conn:  # migrated by startup(), before the first request
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        state = await async_database.health_state() if chosen == "asyncio" else database.health_state()
        assert state["status"] == "healthy"
    # Shut down by the lifespan: a second shutdown has nothing left to do.
    assert (await async_database.shutdown() if chosen == "asyncio" else database.shutdown()) is None


def test_the_default_lifespans_run_the_process_wide_databases():
    assert (lifespan.asyncio, lifespan.sync, lifespan.database, lifespan.async_database) == (
        True,
        False,
        None,
        None,
    )
    assert (sync_lifespan.asyncio, sync_lifespan.sync) == (False, True)
