"""A write that reaches a server read-only for now is retried until it is a primary (runtime.standby)."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.runtime.database import Database
from tests.replication import connect

REFUSED = "a write reached a server that is read-only for now (a failover under way); reconnecting"


def test_a_write_routed_to_a_standby_is_retried_through_its_promotion(replicated, caplog):
    caplog.set_level(logging.WARNING, "atsboost")
    with connect(replicated.primary.url) as conn:
        conn.execute("CREATE TABLE routed (note text)")
    assert replicated.replayed()
    environ = {
        "ATSBOOST_ENV": "testing",
        "DATABASE_URL": replicated.standby.url.render_as_string(hide_password=False),  # a stale route
        "DATABASE_RETRY_MAX_SECONDS": "60",
    }
    database = Database(load_settings(environ), before_serving=())
    database.startup()
    attempts: list[int] = []

    def write(session):
        attempts.append(len(attempts) + 1)
        if len(attempts) == 2:  # begun while the server is a standby; promoted before the write
            session.execute(text("SELECT 1"))
            replicated.primary.control("stop")
            replicated.promote()  # returns once promoted: the server now says it is a primary
        session.execute(text("INSERT INTO routed VALUES ('kept')"))

    try:
        database.run_transaction(write)
    finally:
        database.shutdown(timeout=5)
    with connect(replicated.standby.url) as conn:
        assert conn.execute("SELECT note FROM routed").fetchall() == [("kept",)]
    assert attempts == [1, 2, 3]  # refused by the standby; refused in the transaction the promotion cut; done
    assert caplog.messages.count(REFUSED) == 2, caplog.messages


def test_a_read_only_transaction_the_caller_chose_fails_at_once(make_settings, caplog):
    caplog.set_level(logging.WARNING, "atsboost")
    database = Database(make_settings(), before_serving=())
    database.startup()

    def write_read_only(session):
        session.execute(text("SET TRANSACTION READ ONLY"))
        return session.execute(text("CREATE TEMPORARY TABLE never (x int)"))

    try:
        with pytest.raises(sqlalchemy.exc.InternalError, match="read-only transaction"):
            database.run_transaction(write_read_only)
    finally:
        database.shutdown(timeout=5)
    assert [m for m in caplog.messages if "retrying" in m or REFUSED in m] == []
