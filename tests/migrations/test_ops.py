"""The safe-change helpers: each is lint-clean and runs while another session keeps writing."""

import threading
import time

import pytest
import sqlalchemy
from sqlalchemy import text

from atsboost import migrations
from atsboost.migrations.lint import lint
from tests.conftest import add_revision

SETUP = """
op.execute("CREATE TABLE accounts (id serial PRIMARY KEY, email text, balance int)")
op.execute(
    "INSERT INTO accounts (email, balance) SELECT 'u' || n || '@x.io', NULL FROM generate_series(1, 50000) n"
)
"""
HELPERS = {
    "add_constraint_safely": 'ops.add_constraint_safely("accounts", "ck_accounts_id", "CHECK (id > 0)")',
    "set_not_null_safely": 'ops.set_not_null_safely("accounts", "email")',
    "add_unique_safely": 'ops.add_unique_safely("accounts", "uq_accounts_email", ["email"])',
    "backfill": 'ops.backfill("accounts", "balance = 0", "balance IS NULL", batch_size=5000)',
}


@pytest.mark.parametrize("helper", HELPERS)
def test_a_helper_is_lint_clean_and_does_not_block_writes(
    helper, make_settings, make_engine, alembic_project
):
    add_revision(alembic_project, "ops01", SETUP)
    add_revision(alembic_project, "ops02", "from atsboost.migrations import ops\n" + HELPERS[helper])
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))
    assert lint(settings, revisions=["ops02"]).findings == []
    migrations.upgrade(settings, revision="ops01")

    writer = make_engine(DATABASE_APPLICATION_NAME="atsboost-writer")
    stop, written, failures = threading.Event(), [], []

    def write():
        with writer.connect() as conn:
            conn.execute(text("SET lock_timeout = '2s'"))
            conn.commit()
            while not stop.is_set():
                try:
                    conn.execute(
                        text("INSERT INTO accounts (email, balance) VALUES (gen_random_uuid()::text, 1)")
                    )
                    conn.commit()
                    written.append(1)
                except sqlalchemy.exc.DBAPIError as exc:
                    conn.rollback()
                    failures.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(0.2)
    try:
        migrations.upgrade(settings)
    finally:
        stop.set()
        thread.join()
    assert failures == []  # no write waited beyond lock_timeout
    assert len(written) > 10
    with make_engine().connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "ops02"
        if helper == "backfill":
            assert conn.execute(text("SELECT count(*) FROM accounts WHERE balance IS NULL")).scalar_one() == 0
        if helper == "set_not_null_safely":
            nullable = (
                "SELECT is_nullable FROM information_schema.columns"
                " WHERE table_name = 'accounts' AND column_name = 'email'"
            )
            assert conn.execute(text(nullable)).scalar_one() == "NO"


TRACED = {  # helper: the locks the trace shows (strongest per table, with what runs outside a transaction)
    "add_constraint_safely": [("AccessExclusiveLock", True), ("ShareUpdateExclusiveLock", False)],
    "add_unique_safely": [("ShareUpdateExclusiveLock", False), ("", False)],  # needs the concurrent build
    "backfill": [("RowExclusiveLock", True)],
}


@pytest.mark.parametrize("helper", TRACED)
def test_the_trace_shows_the_locks_a_helper_really_takes(helper, make_settings, alembic_project):
    from atsboost.migrations.lint.trace import trace

    add_revision(alembic_project, "ops01", SETUP)
    add_revision(alembic_project, "ops02", "from atsboost.migrations import ops\n" + HELPERS[helper])
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))
    migrations.upgrade(settings, revision="ops01")
    lines = [line for line in trace(settings, ["ops02"]) if line.table.endswith("accounts")]
    assert [(line.lock, line.traced) for line in lines] == TRACED[helper]
