"""Read replicas on a real streaming standby: where reads land, lag, read-your-writes, a standby lost."""

import asyncio
import json
import logging
import threading
import time
import uuid

import pytest
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.runtime.aio.database import AsyncDatabase
from atsboost.runtime.database import Database
from tests.conftest import wait_until
from tests.replication import connect

IN_RECOVERY = text("SELECT pg_is_in_recovery()")


def on_standby(session) -> bool:
    return bool(session.execute(IN_RECOVERY).scalar_one())


@pytest.fixture
def replica_db(replicated):
    """Build a Database over a fresh database of the pair: the primary, and the standby as replica."""
    name = f"replicas_{uuid.uuid4().hex[:10]}"
    with connect(replicated.primary.url) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        with connect(replicated.primary.url, name) as db:
            db.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
    assert replicated.replayed()
    databases = []

    def make(**overrides: str) -> Database:
        primary = replicated.primary.url.set(database=name).render_as_string(hide_password=False)
        standby = replicated.standby.url.set(database=name).render_as_string(hide_password=False)
        environ = {
            "ATSBOOST_ENV": "testing",
            "DATABASE_URL": primary,
            "DATABASE_REPLICA_URLS": standby,
            "DATABASE_REPLICA_CHECK_INTERVAL": "0.2",
            **overrides,
        }
        database = Database(load_settings(environ))
        databases.append(database)
        return database

    yield make
    for database in databases:
        database.dispose()
    with connect(replicated.primary.url) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def add_note(session, body="hello") -> int:
    return int(
        session.execute(text("INSERT INTO notes (body) VALUES (:b) RETURNING id"), {"b": body}).scalar_one()
    )


def test_reads_land_on_the_standby_and_writes_on_the_primary(replica_db):
    db = replica_db(DATABASE_REPLICA_STICKY_SECONDS="0")
    assert db.run_transaction(on_standby, read_only=True) is True
    assert db.run_transaction(on_standby) is False
    with db.session_scope(read_only=True) as session:
        assert on_standby(session) is True
    with db.session_scope() as session:
        assert on_standby(session) is False


def test_a_read_right_after_a_write_in_the_same_context_sees_it(replicated, replica_db):
    db = replica_db(DATABASE_REPLICA_STICKY_SECONDS="5")
    with connect(replicated.standby.url) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            note = db.run_transaction(add_note)
            seen = db.run_transaction(
                lambda s: s.execute(text("SELECT body FROM notes WHERE id = :i"), {"i": note}).scalar(),
                read_only=True,
            )
            assert seen == "hello"  # the standby, paused, does not have it: the primary answered
            elsewhere: list[bool] = []  # another thread is another context: it reads from the standby
            thread = threading.Thread(
                target=lambda: elsewhere.append(db.run_transaction(on_standby, read_only=True))
            )
            thread.start()
            thread.join(30)
            assert elsewhere == [True]
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")


def test_a_lagging_standby_is_skipped_then_used_again(replicated, replica_db, caplog):
    db = replica_db(DATABASE_REPLICA_MAX_LAG="1", DATABASE_REPLICA_STICKY_SECONDS="0")
    assert db.run_transaction(on_standby, read_only=True) is True
    writer = replica_db()
    with connect(replicated.standby.url) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            caplog.set_level(logging.WARNING, logger="atsboost.runtime.replicas")

            def read_from_primary() -> bool:
                writer.run_transaction(add_note)  # the primary moves on; the standby does not replay it
                return db.run_transaction(on_standby, read_only=True) is False

            assert wait_until(read_from_primary, timeout=10)
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
    assert wait_until(lambda: db.run_transaction(on_standby, read_only=True), timeout=10)
    [warning] = [r for r in caplog.records if "no read replica is usable" in r.getMessage()]
    assert "replay lag" in warning.getMessage() and "DATABASE_REPLICA_MAX_LAG=1" in warning.getMessage()
    assert "reads go to the primary" in warning.getMessage()


def test_losing_the_standby_under_an_8_thread_read_load_surfaces_no_error(replicated, replica_db):
    db = replica_db(DATABASE_REPLICA_STICKY_SECONDS="0")
    errors: list[BaseException] = []
    places: list[bool] = []
    stop = threading.Event()

    def read_loop() -> None:
        while not stop.is_set():
            try:
                places.append(db.run_transaction(on_standby, read_only=True))
            except Exception as exc:  # each one fails the test
                errors.append(exc)

    threads = [threading.Thread(target=read_loop) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        replicated.standby.stop()
        time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        replicated.standby.start()
    assert errors == []
    assert True in places and places[-1] is False  # the standby served, then the primary did
    assert replicated.replayed()


def test_a_read_the_standby_cancels_is_retried_on_another_node(replica_db):
    db = replica_db(DATABASE_REPLICA_STICKY_SECONDS="0")
    conflict = text("DO $$ BEGIN RAISE EXCEPTION 'conflict with recovery' USING ERRCODE = '40001'; END $$")
    places: list[bool] = []

    def read(session) -> int:
        places.append(on_standby(session))
        if places[-1]:
            session.execute(conflict)  # as a standby cancels a query for a recovery conflict
        return 1

    assert db.run_transaction(read, read_only=True, max_seconds=3) == 1
    assert places == [True, False]  # the standby, then the primary: not the standby again


def test_the_async_runtime_routes_alike(replicated, replica_db):
    settings = replica_db(DATABASE_REPLICA_STICKY_SECONDS="5").settings

    async def main() -> list[bool]:
        db = AsyncDatabase(settings)
        try:

            async def where(session) -> bool:
                return bool((await session.execute(IN_RECOVERY)).scalar_one())

            async def write(session) -> bool:
                await session.execute(text("INSERT INTO notes (body) VALUES ('async')"))
                return await where(session)

            before = await db.run_transaction(where, read_only=True)
            async with db.session_scope(read_only=True) as session:
                scoped = await where(session)
            wrote = await db.run_transaction(write)
            after = await db.run_transaction(where, read_only=True)  # this task just wrote: the primary
            child = await asyncio.create_task(db.run_transaction(where, read_only=True))  # inherits it
            return [before, scoped, wrote, after, child]
        finally:
            await db.dispose()

    assert asyncio.run(main()) == [True, True, False, False, False]


def test_config_connect_lists_each_replica_with_its_role_and_lag(replicated, invoke):
    standby = replicated.standby.url.render_as_string(hide_password=False)
    env = {
        "ATSBOOST_ENV": "testing",
        "DATABASE_URL": replicated.primary.url.render_as_string(hide_password=False),
        "DATABASE_REPLICA_URLS": f"{standby},postgresql://postgres@127.0.0.1:1/postgres",
    }
    assert replicated.replayed()  # the writes of the module's earlier tests are replayed: no lag left
    described = json.loads(invoke("config", "--connect", "--json", env=env).stdout)
    standby_node, dead_node = described["replicas"]["nodes"]
    assert (standby_node["role"], standby_node["replay_lag_seconds"], standby_node["problem"]) == (
        "standby",
        0.0,
        None,
    )
    assert dead_node["role"] is None and dead_node["problem"].startswith("unreachable")
    shown = invoke("config", "--connect", env=env).stdout
    assert f"127.0.0.1:{replicated.standby.url.port}/postgres: standby, replay lag 0.0 s" in shown
