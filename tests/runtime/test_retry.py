import logging
import threading
import time

import pytest
import sqlalchemy
from sqlalchemy import text

from atsboost.db import transaction
from atsboost.errors import TransactionOutcomeUnknownError
from atsboost.runtime.retry import is_transient, run_transaction


@pytest.fixture
def server_engine(make_server_engine):
    """An engine on the server this module restarts."""
    return make_server_engine(DATABASE_APPLICATION_NAME="atsboost-retry")


@pytest.fixture
def killer(make_server_engine):
    """A separate engine, so the killing connection is never one of the victims."""
    return make_server_engine(DATABASE_APPLICATION_NAME="atsboost-killer")


@pytest.fixture
def counter(make_engine):
    engine = make_engine(DATABASE_POOL_SIZE="8")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)"))
        conn.execute(text("INSERT INTO counter VALUES (1, 0)"))
    return engine


def select_one(session):
    return session.execute(text("SELECT 1")).scalar_one()


def test_200_transactions_from_8_threads_across_a_server_restart(controlled_server, server_engine, caplog):
    errors, successes = [], []

    def work():
        for _ in range(25):
            try:
                run_transaction(select_one, engine=server_engine, read_only=True)
                successes.append(time.monotonic())
            except Exception as exc:  # every one of these is a failure of the test
                errors.append(exc)
            time.sleep(0.02)

    threads = [threading.Thread(target=work) for _ in range(8)]
    with caplog.at_level(logging.WARNING, logger="atsboost.runtime.retry"):
        for thread in threads:
            thread.start()
        time.sleep(0.15)
        controlled_server.restart()
        accepting = time.monotonic()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(successes) == 200
    first_after = min(t for t in successes if t >= accepting)
    assert first_after - accepting < 2.0
    assert "transaction failed with" in caplog.text  # the restart was really felt, and retried


def test_killed_backends_are_replaced_without_an_error(server_engine, killer):
    pids = set()
    held = [server_engine.connect() for _ in range(4)]
    for conn in held:
        pids.add(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    for conn in held:
        conn.close()
    with killer.connect() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:p AS int[])) AS pid"), {"p": list(pids)}
        )
    seen = {
        run_transaction(
            lambda s: s.execute(text("SELECT pg_backend_pid()")).scalar_one(), engine=server_engine
        )
        for _ in range(20)
    }
    assert not seen & pids


def test_an_idle_dead_connection_is_validated_away_without_retry(server_engine, killer):
    with server_engine.connect() as conn:
        old = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with killer.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": old})
    time.sleep(1.2)  # idle longer than DATABASE_VALIDATE_AFTER (1 s): checked on checkout
    with server_engine.connect() as conn:  # plain use, no run_transaction: no error may surface
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != old


def test_concurrent_serializable_updates_all_succeed(counter, caplog):
    def increment(session):
        n = session.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one()
        session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})

    errors = []

    def work():
        for _ in range(10):
            try:
                run_transaction(increment, engine=counter, isolation_level="SERIALIZABLE")
            except Exception as exc:
                errors.append(exc)

    with caplog.at_level(logging.WARNING, logger="atsboost.runtime.retry"):
        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    with counter.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 80
    assert "transaction failed with 40001" in caplog.text  # conflicts happened and were retried


def test_a_unique_violation_is_raised_at_once(counter):
    calls = []

    def insert_duplicate(session):
        calls.append(1)
        session.execute(text("INSERT INTO counter VALUES (1, 0)"))

    with pytest.raises(sqlalchemy.exc.IntegrityError, match="duplicate key"):
        run_transaction(insert_duplicate, engine=counter)
    assert len(calls) == 1


def test_a_connection_broken_during_commit_has_an_unknown_outcome(counter):
    def write_then_lose_the_connection(session):
        session.execute(text("UPDATE counter SET n = n + 1"))
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with counter.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        time.sleep(0.1)

    with pytest.raises(TransactionOutcomeUnknownError, match="the connection broke during COMMIT"):
        run_transaction(write_then_lose_the_connection, engine=counter)


def test_an_idempotent_transaction_is_retried_after_a_broken_commit(counter):
    attempts = []

    def set_value(session):
        attempts.append(1)
        session.execute(text("UPDATE counter SET n = 42"))
        if len(attempts) == 1:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with counter.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            time.sleep(0.1)

    run_transaction(set_value, engine=counter, idempotent=True)
    assert len(attempts) == 2
    with counter.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 42


def test_the_decorator_form(counter):
    @transaction(engine=counter)
    def add(session, amount):
        session.execute(text("UPDATE counter SET n = n + :a"), {"a": amount})
        return amount

    assert add(5) == 5
    with counter.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 5


def test_permanent_errors_are_not_transient(counter):
    with counter.connect() as conn:
        for statement in ("SELEC 1", "SELECT * FROM no_such_table", "INSERT INTO counter VALUES (1, 0)"):
            with pytest.raises(sqlalchemy.exc.DBAPIError) as info:
                conn.execute(text(statement))
            assert not is_transient(info.value)
            conn.rollback()


def test_read_only_transactions_refuse_writes(counter):
    with pytest.raises(sqlalchemy.exc.InternalError, match="read-only transaction"):
        run_transaction(lambda s: s.execute(text("UPDATE counter SET n = 1")), engine=counter, read_only=True)


def test_a_read_only_transaction_survives_a_broken_commit(counter):
    def read_then_lose_the_connection(session):
        n = session.execute(text("SELECT n FROM counter")).scalar_one()
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with counter.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        time.sleep(0.1)
        return n

    assert run_transaction(read_then_lose_the_connection, engine=counter, read_only=True) == 0
