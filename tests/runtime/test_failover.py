"""Failover through libpq's multi-host URL: the primary stops, the standby is promoted, writes go on."""

import functools
import threading
import time
import uuid

from sqlalchemy import text

from atsboost import migrations
from atsboost.config.settings import load_settings
from atsboost.errors import TransactionOutcomeUnknownError
from atsboost.runtime.database import Database
from tests.conftest import wait_until
from tests.replication import connect


def test_a_write_load_survives_promotion_with_every_acknowledged_row_once(replicated):
    primary, standby = replicated.primary.url, replicated.standby.url
    with connect(primary) as conn:
        conn.execute(
            "CREATE TABLE orders (id bigserial PRIMARY KEY, token text NOT NULL)"
        )  # token not unique
    url = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
        "?target_session_attrs=read-write"
    )
    db = Database(load_settings({"ATSBOOST_ENV": "testing", "DATABASE_URL": url, "DATABASE_POOL_SIZE": "4"}))
    acknowledged: list[str] = []
    unknown: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def insert(session, token):
        session.execute(text("INSERT INTO orders (token) VALUES (:t)"), {"t": token})

    def write_loop() -> None:
        while not stop.is_set():
            token = uuid.uuid4().hex
            try:
                db.run_transaction(functools.partial(insert, token=token), max_seconds=30)
                acknowledged.append(token)
            except TransactionOutcomeUnknownError:
                unknown.append(token)  # the connection broke at COMMIT: said so, never retried blindly
            except Exception as exc:  # each one fails the test
                errors.append(exc)
            time.sleep(0.01)

    threads = [threading.Thread(target=write_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        assert wait_until(lambda: len(acknowledged) > 50, timeout=20)
        before_failover = len(acknowledged)
        replicated.primary.stop()  # a clean stop: the standby receives every acknowledged commit
        replicated.promote()
        assert wait_until(lambda: len(acknowledged) > before_failover + 50, timeout=30), (
            "writes did not resume"
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        db.dispose()
    assert errors == []
    migrations.upgrade(db.settings)  # the migration lock and the revisions find the new primary too
    with connect(standby) as conn:  # the new primary
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        counts: dict[str, int] = dict(
            conn.execute("SELECT token, count(*) FROM orders GROUP BY token").fetchall()
        )
    assert all(counts.get(token) == 1 for token in acknowledged), "an acknowledged row is lost or doubled"
    assert all(counts.get(token, 0) <= 1 for token in unknown)
    assert set(counts) <= set(acknowledged) | set(unknown)
