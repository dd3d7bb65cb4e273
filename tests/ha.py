"""Writers and readers against a Patroni cluster during a fault: what an application would see.

8 threads through ``Database.run_transaction`` and 100 asyncio tasks through
``AsyncDatabase.run_transaction`` insert rows with keys of their own, half of each
through HAProxy and half through a libpq host list; a reader thread per route reads
through the replicas. Every call's outcome is recorded as the caller saw it, and
afterwards the rows are read back from the leader: an acknowledged key that is
missing is a lost write, a key stored twice a duplicated one.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from atsboost.config import load_settings
from atsboost.runtime.aio.database import AsyncDatabase
from atsboost.runtime.database import Database
from tests.cluster import RETRY_TIMEOUT, Cluster, Node
from tests.conftest import wait_until

THREADS, TASKS = 8, 100  # in all, half on each route
ROUTES = ("haproxy", "host list")
PACE = 0.05  # seconds each writer waits between its writes: about 2,000 writes a second in all
INSERT = text("INSERT INTO ha_writes (key) VALUES (:key)")
READ = text("SELECT count(*) FROM ha_writes")


@dataclass
class Calls:
    """Each call as its caller saw it: when it began and ended, and what it raised."""

    acknowledged: dict[str, tuple[float, float]] = field(default_factory=dict)
    errors: list[tuple[float, str]] = field(default_factory=list)
    longest: float = 0.0
    reads: int = 0
    read_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, key: str, began: float, error: BaseException | None) -> None:
        ended = time.monotonic()
        with self.lock:
            self.longest = max(self.longest, ended - began)
            if error is None:
                self.acknowledged[key] = (began, ended)
            else:
                self.errors.append((began, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"))


@dataclass
class Outcome:
    """What a scenario showed; times in seconds."""

    acknowledged: int
    errors: list[str]
    longest_call: float
    first_commit: float | None  # from the fault to the first acknowledged write begun once it was caused
    longest_gap: float  # the longest time with no write acknowledged, around the fault
    lost: int
    duplicated: int
    reads: int
    read_errors: list[str]

    def summary(self) -> str:
        first = "none" if self.first_commit is None else f"{self.first_commit:.2f} s"
        return (
            f"{self.acknowledged} acknowledged, {len(self.errors)} errors, "
            f"longest call {self.longest_call:.2f} s, first commit {first}, "
            f"longest gap {self.longest_gap:.2f} s, lost {self.lost}, duplicated {self.duplicated}, "
            f"reads {self.reads} ({len(self.read_errors)} failed)"
        )


def environ(cluster: Cluster, *, route: str) -> dict[str, str]:
    """The application's settings: a retry budget past Patroni's TTL, a short stall timeout."""
    url = cluster.haproxy_url().render_as_string() if route == "haproxy" else cluster.host_list_url()
    replicas = ",".join(cluster.node_url(node).render_as_string() for node in cluster.nodes)
    return {
        "ATSBOOST_ENV": "testing",
        "DATABASE_URL": url,
        "DATABASE_REPLICA_URLS": replicas,
        "DATABASE_RETRY_MAX_SECONDS": "45",
        "DATABASE_STALL_TIMEOUT": "4",
        "DATABASE_CONNECT_TIMEOUT": "2",
        "DATABASE_POOL_SIZE": "20",
        "DATABASE_POOL_TIMEOUT": "45",
        "DATABASE_PRIMARY_CHECK_INTERVAL": "1",
        "DATABASE_HEALTH_MONITOR": "false",
        "DATABASE_APPLICATION_NAME": "atsboost-ha",
    }


def prepare(cluster: Cluster) -> None:
    """An empty table of keys on the leader (no unique key: a duplicate must be seen, not refused)."""
    assert wait_until(cluster.healthy, timeout=180), f"the cluster is not whole: {cluster.members()}"
    leader = cluster.leader()
    assert leader is not None
    with psycopg.connect(host=leader.address, user="postgres", dbname="postgres") as conn:  # one transaction
        conn.execute(
            "CREATE TABLE IF NOT EXISTS ha_writes"
            " (key text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        conn.execute("TRUNCATE ha_writes")  # replayed at once with it: the replicas never lack the table
    assert wait_until(lambda: all(_has_table(node) for node in cluster.nodes), timeout=60), "not replayed"


def _has_table(node: Node) -> bool:
    with psycopg.connect(host=node.address, user="postgres", dbname="postgres", connect_timeout=5) as conn:
        return conn.execute("SELECT to_regclass('ha_writes') IS NOT NULL").fetchone() == (True,)


def stored(cluster: Cluster) -> collections.Counter[str]:
    leader = cluster.leader()
    assert leader is not None
    with psycopg.connect(host=leader.address, user="postgres", dbname="postgres", connect_timeout=5) as conn:
        return collections.Counter(
            {key: n for key, n in conn.execute("SELECT key, count(*) FROM ha_writes GROUP BY key")}
        )


@dataclass
class Scenario:
    """A fault: how it is caused, when the cluster has got over it, and how it is put right after."""

    fault: Callable[[], object]
    recovered: Callable[[], bool]
    heal: Callable[[], None] = lambda: None
    hold: float = 0.0  # seconds the fault lasts at least


SCENARIOS = ("switchover", "kill the leader's postmaster", "etcd loses quorum", "the leader's link down")


def scenario(cluster: Cluster, name: str) -> Scenario:
    """One of the four faults of a failover manager's life (SCENARIOS), on the whole cluster's leader."""
    assert wait_until(cluster.healthy, timeout=180), f"the cluster is not whole: {cluster.members()}"
    leader = cluster.leader()
    assert leader is not None, "no leader"
    candidate = cluster.candidate()
    return {
        "switchover": Scenario(lambda: cluster.switchover(candidate), lambda: cluster.leader() is candidate),
        "kill the leader's postmaster": Scenario(lambda: cluster.kill_postmaster(leader), cluster.healthy),
        "the leader's link down": Scenario(
            lambda: cluster.link(leader, up=False),
            lambda: cluster.leader() not in (None, leader),
            heal=lambda: cluster.link(leader, up=True),
        ),
        "etcd loses quorum": Scenario(
            lambda: cluster.stop_etcd(2), cluster.healthy, heal=cluster.start_etcd, hold=RETRY_TIMEOUT * 3
        ),
    }[name]


def under_load(cluster: Cluster, scenario: Scenario, *, bound: float = 90) -> dict[str, Outcome]:
    """Run the writers on both routes; cause the fault; go on until it is got over and 3 s more; judge.

    Returns each route's outcome.
    """
    prepare(cluster)
    calls, stop = {route: Calls() for route in ROUTES}, threading.Event()
    databases = {route: load_settings(environ(cluster, route=route)) for route in ROUTES}
    synchronous = {route: Database(settings, before_serving=()) for route, settings in databases.items()}
    workers = []
    for route, database in synchronous.items():
        database.startup()
        workers += [
            threading.Thread(target=_writer, args=(database, f"{route}:s{n}", calls[route], stop))
            for n in range(THREADS // len(ROUTES))
        ]
        workers.append(threading.Thread(target=_reader, args=(database, calls[route], stop)))
        asynchronous = AsyncDatabase(databases[route], before_serving=())
        workers.append(
            threading.Thread(target=asyncio.run, args=(_tasks(asynchronous, route, calls[route], stop),))
        )
    for worker in workers:
        worker.start()
    try:
        time.sleep(3)
        fault_at = time.monotonic()
        scenario.fault()
        caused = time.monotonic()
        time.sleep(scenario.hold)
        wait_until(scenario.recovered, timeout=max(0.0, fault_at + bound - time.monotonic()))
        time.sleep(3)
    finally:
        stop.set()
        for worker in workers:
            worker.join(90)
        for database in synchronous.values():
            database.shutdown(timeout=5)
        scenario.heal()
    assert wait_until(lambda: cluster.leader() is not None, timeout=60), f"no leader: {cluster.members()}"
    rows = stored(cluster)
    return {route: _judge(rows, calls[route], fault_at, caused) for route in ROUTES}


def _writer(database: Database, name: str, calls: Calls, stop: threading.Event) -> None:
    number = 0
    while not stop.is_set():
        key, number = f"{name}-{number}", number + 1
        began, error = time.monotonic(), None
        try:
            database.run_transaction(functools.partial(_insert, key=key))
        except Exception as exc:
            error = exc
        calls.record(key, began, error)
        stop.wait(PACE)


def _reader(database: Database, calls: Calls, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            database.run_transaction(lambda session: session.execute(READ).scalar(), read_only=True)
            calls.reads += 1
        except Exception as exc:
            calls.read_errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        stop.wait(0.1)


async def _tasks(database: AsyncDatabase, route: str, calls: Calls, stop: threading.Event) -> None:
    await database.startup()
    try:
        await asyncio.gather(
            *(_task(database, f"{route}:a{n}", calls, stop) for n in range(TASKS // len(ROUTES)))
        )
    finally:
        await database.shutdown(timeout=5)


async def _task(database: AsyncDatabase, name: str, calls: Calls, stop: threading.Event) -> None:
    number = 0
    while not stop.is_set():
        key, number = f"{name}-{number}", number + 1
        began, error = time.monotonic(), None
        try:
            await database.run_transaction(_inserting(key))
        except Exception as exc:
            error = exc
        calls.record(key, began, error)
        await asyncio.sleep(PACE)


def _insert(session: Session, *, key: str) -> object:
    return session.execute(INSERT, {"key": key})


def _inserting(key: str) -> Callable[[Any], Awaitable[object]]:
    async def insert(session: Any) -> object:
        return await session.execute(INSERT, {"key": key})

    return insert


def _judge(rows: collections.Counter[str], calls: Calls, fault_at: float, caused: float) -> Outcome:
    """Compare the rows with the calls; the first commit is of a write begun once the fault was caused."""
    acknowledged = calls.acknowledged
    after = [ended - fault_at for began, ended in acknowledged.values() if began >= caused]
    ends = sorted(ended for _, ended in acknowledged.values())
    gaps = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    return Outcome(
        acknowledged=len(acknowledged),
        errors=[message for _, message in calls.errors],
        longest_call=calls.longest,
        first_commit=min(after) if after else None,
        longest_gap=max(gaps, default=0.0),
        lost=sum(1 for key in acknowledged if rows[key] == 0),
        duplicated=sum(1 for n in rows.values() if n > 1),
        reads=calls.reads,
        read_errors=calls.read_errors,
    )
