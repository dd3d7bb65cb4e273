"""Split brain, made for real: a standby promoted while its old primary runs on, both read-write.

A URL listing the old primary first (``target_session_attrs=read-write``) is what let
processes write to both. atsboost fences the one on the lower timeline: the running
process's writes move to the new primary, and a new process never writes to the old one.
"""

import asyncio
import json
import logging
import threading
import time

import pytest
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.runtime.aio.database import AsyncDatabase
from atsboost.runtime.database import Database
from atsboost.runtime.fencing import Primaries
from atsboost.runtime.hosts import Node
from atsboost.runtime.pool.metrics import stats_of
from tests.conftest import wait_until
from tests.replication import connect

pytestmark = pytest.mark.slow

CHECK = 0.2  # DATABASE_PRIMARY_CHECK_INTERVAL in these tests
INSERT = text("INSERT INTO writes (writer, started) VALUES (:w, :t) RETURNING inet_server_port()")


def test_a_primary_on_a_lower_timeline_is_fenced_and_a_tie_fences_both(caplog):
    caplog.set_level(logging.ERROR, "atsboost.runtime.fencing")
    fenced: list[str] = []
    primaries = Primaries(on_fenced=fenced.append)
    primaries.observe(
        [Node("a:1", primary=True, timeline=1, system="s"), Node("b:2", primary=False, system="s")]
    )
    assert primaries.fenced() == set()
    primaries.observe([Node("b:2", True, 2, "s")])
    assert primaries.fenced() == {"a:1"} and fenced == ["a:1"]
    assert caplog.messages == [
        "split brain: a:1 says it is a primary on timeline 1, but b:2 is the primary on timeline 2; "
        "refusing to write to a:1"
    ]
    primaries.observe([Node("a:1", False, system="s")])  # rejoined as a standby
    assert primaries.fenced() == set()
    tie = Primaries()
    tie.observe(
        [Node("c:1", primary=True, timeline=3, system="t"), Node("d:2", primary=True, timeline=3, system="t")]
    )
    assert tie.fenced() == {"c:1", "d:2"}  # two primaries on one timeline: neither is trusted


def host_list(replicated):
    first, second = replicated.primary.url, replicated.standby.url
    return (
        f"postgresql://postgres@{first.host}:{first.port},{second.host}:{second.port}/postgres"
        "?target_session_attrs=read-write"
    )


def database_of(url):
    settings = load_settings(
        {
            "ATSBOOST_ENV": "testing",
            "DATABASE_URL": url,
            "DATABASE_PRIMARY_CHECK_INTERVAL": str(CHECK),
            "DATABASE_POOL_SIZE": "4",
        }
    )
    return Database(settings, before_serving=())


def test_a_running_process_stops_writing_to_the_old_primary_and_a_new_one_never_does(
    replicated, caplog, invoke
):
    caplog.set_level(logging.ERROR, "atsboost.runtime.fencing")
    old, new = replicated.primary.url, replicated.standby.url
    with connect(old) as conn:
        conn.execute("CREATE TABLE writes (id serial PRIMARY KEY, writer int, started float8)")
    assert replicated.replayed()
    database = database_of(host_list(replicated))
    stop = threading.Event()
    calls: list[tuple[float, int | None, Exception | None]] = []  # (started, port written to, error)

    def write(writer):
        while not stop.is_set():
            started = time.time()
            try:
                port = database.run_transaction(
                    lambda s, w=writer, t=started: s.execute(INSERT, {"w": w, "t": t}).scalar_one()
                )
                calls.append((started, port, None))
            except Exception as exc:
                calls.append((started, None, exc))
            time.sleep(0.01)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for writer in writers:
        writer.start()
    try:
        assert wait_until(lambda: len(calls) >= 40, timeout=30)
        promoting = time.time()
        replicated.promote()  # the old primary runs on: two primaries
        assert wait_until(lambda: any(r.getMessage().startswith("split brain") for r in caplog.records), 30)
        detected = next(r.created for r in caplog.records if r.getMessage().startswith("split brain"))
        assert wait_until(lambda: any(p == new.port for s, p, _ in calls if s > detected), timeout=30)
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)
    [line] = [r.getMessage() for r in caplog.records]
    assert line == (
        f"split brain: {old.host}:{old.port} says it is a primary on timeline 1, but {new.host}:{new.port} "
        f"is the primary on timeline 2; refusing to write to {old.host}:{old.port}"
    )
    assert detected > promoting  # found by the watch, after the promotion made two primaries
    after = [(port, error) for started, port, error in calls if started > detected]
    assert after and all(port == new.port for port, error in after if error is None)
    assert [error for _, error in after if error is not None] == []  # moved over without an error
    with connect(old) as conn:  # what the old primary holds: nothing begun after the detection
        late = conn.execute("SELECT count(*) FROM writes WHERE started > %s", [detected]).fetchone()
    assert late == (0,)
    stats = stats_of(database.get_engine().pool)
    assert stats is not None and stats.snapshot()["fenced"] == 1  # atsboost_pool_primaries_fenced_total
    database.shutdown(timeout=5)
    assert "atsboost-primary-watch" not in {thread.name for thread in threading.enumerate()}

    env = {"ATSBOOST_ENV": "testing", "DATABASE_URL": host_list(replicated)}
    report = json.loads(invoke("health", "--json", env=env).stdout)
    assert report["hosts"] == [
        {"host": f"{old.host}:{old.port}", "role": "primary", "timeline": 1, "error": None},
        {"host": f"{new.host}:{new.port}", "role": "primary", "timeline": 2, "error": None},
    ]
    shown = invoke("config", "--connect", env=env).stdout
    assert f"hosts              {old.host}:{old.port}: primary, timeline 1\n" in shown
    assert f"                   {new.host}:{new.port}: primary, timeline 2\n" in shown
    assert "HOSTS\n  host" in invoke("health", env=env).stdout
    checked = invoke("health", "--check", env=env)
    assert checked.returncode == 2
    assert checked.stdout.startswith(
        f"DATABASE CRITICAL - hosts: split brain: 2 primaries: {old.host}:{old.port} (timeline 1), "
        f"{new.host}:{new.port} (timeline 2); stop all but the newest timeline's"
    )

    fresh = database_of(host_list(replicated))  # a new process: the old primary is still first in the list
    try:
        port = fresh.run_transaction(lambda s: s.execute(text("SELECT inet_server_port()")).scalar_one())
        assert port == new.port
    finally:
        fresh.shutdown(timeout=5)
    assert asyncio.run(written_by_a_new_asyncio_process(host_list(replicated))) == new.port


async def written_by_a_new_asyncio_process(url):
    """The port an asyncio process's first transaction reaches through the host list."""
    database = AsyncDatabase(database_of(url).settings, before_serving=())

    async def port(session):
        return (await session.execute(text("SELECT inet_server_port()"))).scalar_one()

    try:
        return await database.run_transaction(port)
    finally:
        await database.shutdown(timeout=5)
