import json
import os
import threading
import time

import jsonschema
import pytest
import sqlalchemy
from sqlalchemy import text

from atsboost import migrations
from atsboost.config.settings import load_settings
from atsboost.health import report
from atsboost.health.checks import Thresholds, evaluate, overall
from atsboost.health.collect import section_advice
from atsboost.runtime.engine import create_engine
from tests.conftest import REPO

SCHEMA = json.loads((REPO / "docs" / "health.schema.json").read_text())


@pytest.fixture
def migrated(make_settings, make_engine):
    """A database at head, and an engine on it."""
    migrations.upgrade(make_settings())
    return make_engine(DATABASE_APPLICATION_NAME="atsboost-health")


@pytest.fixture
def other(make_engine):
    """Another application's sessions."""
    return make_engine(DATABASE_APPLICATION_NAME="someone-else")


def plant_invalid_index(engine):
    """Leave public.dupes_n INVALID, as a failed CREATE UNIQUE INDEX CONCURRENTLY does."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("CREATE TABLE dupes (n int)"))
        conn.execute(text("INSERT INTO dupes VALUES (1), (1)"))
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            conn.execute(text("CREATE UNIQUE INDEX CONCURRENTLY dupes_n ON dupes (n)"))


def test_a_sleeping_query_is_listed_with_its_pid(migrated, other):
    pids = []

    def sleep():
        with other.connect() as conn:
            pids.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            conn.execute(text("SELECT pg_sleep(1.5) /* nightly report */"))

    thread = threading.Thread(target=sleep)
    thread.start()
    time.sleep(0.7)
    found = report(migrated, long_query_seconds=0.3)
    thread.join()
    listed = [q for q in found.long_queries if "nightly report" in (q["query"] or "")]
    assert listed and listed[0]["pid"] == pids[0]
    assert listed[0]["application"] == "someone-else" and listed[0]["seconds"] >= 0.3
    assert listed[0]["state"] == "active" and listed[0]["wait_event"] == "Timeout:PgSleep"


def test_a_blocked_update_shows_the_blocking_pair(migrated, other):
    with migrated.begin() as conn:
        conn.execute(text("INSERT INTO users (email, password_hash) VALUES ('a@b.io', 'x')"))
    with other.connect() as holder:
        holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
        holder.execute(text("UPDATE users SET is_active = false"))  # the open transaction holds the row

        def blocked_update():
            with other.begin() as conn:
                conn.execute(text("UPDATE users SET role = 'admin' /* waits */"))

        waiter = threading.Thread(target=blocked_update)
        waiter.start()
        time.sleep(0.5)
        found = report(migrated)
        holder.rollback()  # release the row: the waiting update goes through
    waiter.join()
    pairs = [b for b in found.blocking if b["blocking_pid"] == holder_pid]
    assert len(pairs) == 1
    assert "/* waits */" in (pairs[0]["blocked_query"] or "")
    assert pairs[0]["blocking_state"] == "idle in transaction"
    assert overall(evaluate(found, Thresholds())) == "warning"


def test_a_lock_wait_in_another_database_is_that_database_s_report_s(migrated, pg_server):
    """On a shared server another application's lock waits are not this database's to report."""
    name = f"{migrated.url.database}_neighbour"
    admin = create_engine_for(pg_server, pg_server.maintenance_dbname)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    neighbour = sqlalchemy.create_engine(pg_server.url(name))
    try:
        with neighbour.begin() as conn:
            conn.execute(text("CREATE TABLE t (id int)"))
        with neighbour.connect() as holder:
            holder.execute(text("LOCK TABLE t"))

            def blocked():
                with neighbour.connect() as conn:
                    conn.execute(text("SELECT * FROM t /* waits there */"))

            waiter = threading.Thread(target=blocked)
            waiter.start()
            time.sleep(0.5)
            found = report(migrated)
            holder.rollback()
        waiter.join()
    finally:
        neighbour.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    assert not [b for b in found.blocking if "waits there" in (b["blocked_query"] or "")]


def create_engine_for(server, database):
    return sqlalchemy.create_engine(server.url(database), isolation_level="AUTOCOMMIT")


def test_an_invalid_index_from_a_failed_concurrent_build_is_flagged(migrated):
    plant_invalid_index(migrated)
    found = report(migrated)
    assert [(i["index"], i["table"]) for i in found.invalid_indexes] == [("public.dupes_n", "dupes")]
    checks = {c.name: c for c in evaluate(found, Thresholds())}
    assert (
        checks["invalid indexes"].status == "warning"
        and "public.dupes_n" in checks["invalid indexes"].message
    )


def test_an_idle_in_transaction_session_is_counted_with_its_age(migrated, other):
    with other.connect() as idle:
        idle.execute(text("SELECT 1"))  # opens a transaction and leaves it open
        time.sleep(1.2)
        found = report(migrated)
    assert found.usage is not None
    assert found.usage.by_state.get("idle in transaction", 0) >= 1
    assert (found.usage.oldest_idle_in_transaction_seconds or 0) >= 1.0
    assert found.usage.by_application["someone-else"] >= 1


def test_duplicate_and_unused_indexes(migrated):
    with migrated.begin() as conn:
        conn.execute(text("CREATE INDEX ix_subscriptions_user_only ON subscriptions (user_id)"))
    found = report(migrated, unused_index_bytes=0)
    duplicates = {(d["index"], d["covered_by"]) for d in found.duplicate_indexes}
    assert ("public.ix_subscriptions_user_only", "ix_subscriptions_user_status") in duplicates
    assert "public.ix_subscriptions_user_only" in {u["index"] for u in found.unused_indexes}


def test_largest_tables_are_ranked_by_the_catalog_then_sized_exactly(migrated):
    with migrated.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for n in range(40):
            conn.execute(text(f"CREATE TABLE small_{n} (id int PRIMARY KEY)"))
        conn.execute(text("CREATE TABLE wide (id int PRIMARY KEY, body text)"))
        conn.execute(text("INSERT INTO wide SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g"))
        conn.execute(text("CREATE TABLE indexed (id int, key text)"))
        conn.execute(text("INSERT INTO indexed SELECT g, md5(g::text) FROM generate_series(1, 20000) g"))
        conn.execute(text("CREATE INDEX indexed_key ON indexed (key)"))
        conn.execute(text("VACUUM ANALYZE wide, indexed"))
        exact = dict(
            conn.execute(
                text(
                    "SELECT format('%I.%I', 'public', t), pg_total_relation_size(t::regclass) FROM unnest("
                    "ARRAY['wide', 'indexed']) t"
                )
            ).all()
        )
    found = report(migrated)
    ranked = [t["table"] for t in found.largest_tables]
    assert ranked[:2] == ["public.wide", "public.indexed"], found.largest_tables
    assert {t["table"]: t["total_bytes"] for t in found.largest_tables[:2]} == exact
    assert len(found.largest_tables) == 10


def test_a_section_that_times_out_says_so_not_that_it_is_forbidden(migrated):
    with migrated.connect() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 50"))
        with pytest.raises(sqlalchemy.exc.OperationalError) as raised:
            conn.execute(text("SELECT pg_sleep(1)"))
    advice = section_advice(raised.value)
    assert advice.startswith("timed out after 2 s (the report's bound on every query)")
    assert "grant" not in advice and "role" not in advice


def test_connection_section_and_migration_state(migrated, make_settings):
    found = report(migrated, migration_status=migrations.status(make_settings()))
    assert found.connection.reachable and found.connection.ssl is False
    assert found.connection.revision == found.connection.head == ["7c1f9a2b4d10"]
    assert found.connection.pending_revisions == 0
    assert {t["table"] for t in found.largest_tables} >= {"public.users", "public.subscriptions"}
    assert (found.database_bytes or 0) > 0 and (found.xid_age or 0) > 0


def test_json_output_validates_against_the_documented_schema(invoke, least_privilege):
    assert invoke("migrate", env=least_privilege).returncode == 0
    result = invoke("health", "--json", env=least_privilege)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    jsonschema.validate(data, SCHEMA)
    assert data["status"] == "ok" and data["connection"]["pending_revisions"] == 0
    assert data["role"]["name"] == least_privilege["DATABASE_APP_ROLE"]


def test_the_schema_rejects_what_it_should():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema_version": 3}, SCHEMA)


def test_check_exit_codes_follow_the_thresholds(invoke, least_privilege, make_engine):
    environ = least_privilege
    assert invoke("migrate", env=environ).returncode == 0
    ok = invoke("health", "--check", env=environ)
    assert ok.returncode == 0, ok.stdout
    assert ok.stdout.startswith("DATABASE OK - ")
    idle = make_engine(DATABASE_APPLICATION_NAME="someone-idle", DATABASE_URL=environ["DATABASE_URL"])
    with idle.connect() as conn:
        conn.execute(text("SELECT 1"))
        time.sleep(1.2)
        warning = invoke("health", "--check", "--warning-idle-transaction", "1", env=environ)
        critical = invoke(
            "health",
            "--check",
            "--warning-idle-transaction",
            "0.5",
            "--critical-idle-transaction",
            "1",
            env=environ,
        )
    assert warning.returncode == 1, warning.stdout
    assert warning.stdout.startswith("DATABASE WARNING - idle in transaction: oldest for ")
    assert critical.returncode == 2, critical.stdout
    assert critical.stdout.startswith("DATABASE CRITICAL - ")


def test_check_is_critical_when_the_database_is_unreachable(invoke, unused_tcp_port):
    env = {
        "ATSBOOST_ENV": "testing",
        "DATABASE_URL": f"postgresql://app:s3cret@127.0.0.1:{unused_tcp_port}/db",
    }
    result = invoke("health", "--check", env=env)
    assert result.returncode == 2
    assert result.stdout.startswith("DATABASE CRITICAL - connection: unreachable")
    assert "s3cret" not in result.stdout + result.stderr


@pytest.mark.parametrize("args", [[], ["--json"], ["--format", "json"]])
def test_every_format_exits_2_with_the_fix_when_the_database_cannot_be_reached(
    invoke, unused_tcp_port, database_url, args
):
    refused = f"postgresql://app:s3cret@127.0.0.1:{unused_tcp_port}/db"
    missing = database_url.set(database="no_such_database").render_as_string(hide_password=False)
    for url, fix in [(refused, "check that the server is running"), (missing, "create it (createdb NAME)")]:
        result = invoke("health", *args, env={"ATSBOOST_ENV": "testing", "DATABASE_URL": url})
        assert result.returncode == 2, result.stdout
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("Error: cannot connect to ") and fix in line
        if args:
            document = json.loads(result.stdout)
            assert document["connection"]["reachable"] is False and fix in document["connection"]["error"]
            assert document["status"] == "critical"
        else:
            assert result.stdout == ""
        assert "s3cret" not in result.stdout + result.stderr


def test_the_report_runs_as_a_plain_role(migrated, pg_server, database_url):
    role = f"atsboost_plain_{os.getpid()}"
    with migrated.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER"))
    try:
        plain = create_engine(
            load_settings(
                {
                    "ATSBOOST_ENV": "testing",
                    "DATABASE_URL": database_url.set(username=role).render_as_string(hide_password=False),
                }
            )
        )
        try:
            found = report(plain)
        finally:
            plain.dispose()
        assert found.connection.reachable
        assert found.usage is not None and found.usage.total >= 1
        assert found.database_bytes is not None
    finally:
        with migrated.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(f"DROP ROLE {role}"))


def test_check_honours_database_long_query_seconds(invoke, least_privilege, make_engine):
    environ = least_privilege
    assert invoke("migrate", env=environ).returncode == 0
    other = make_engine(DATABASE_URL=environ["DATABASE_URL"])  # a role sees its own sessions' queries

    def sleep():
        with other.connect() as conn:
            conn.execute(text("SELECT pg_sleep(2) /* slow export */"))

    thread = threading.Thread(target=sleep)
    thread.start()
    time.sleep(1)
    default = invoke("health", "--check", env=environ)
    flagged = invoke("health", "--check", env={**environ, "DATABASE_LONG_QUERY_SECONDS": "0.5"})
    thread.join()
    assert default.returncode == 0, default.stdout
    assert flagged.returncode == 1, flagged.stdout
    assert "long queries: 1 over 0.5 s" in flagged.stdout


def test_the_report_does_not_wait_behind_a_table_lock(migrated, other):
    plant_invalid_index(migrated)
    with other.connect() as locker:
        locker_pid = locker.execute(text("SELECT pg_backend_pid()")).scalar_one()
        locker.execute(text("LOCK TABLE dupes, users IN ACCESS EXCLUSIVE MODE"))
        found = report(
            migrated
        )  # its queries give up on the lock after lock_timeout (50 ms): the notes say so
        locker.rollback()
    assert [i["index"] for i in found.invalid_indexes] == ["public.dupes_n"]
    assert found.largest_tables, found.notes  # sizes come from the catalog while the tables are locked
    assert all("not readable by this role" not in note for note in found.notes), found.notes
    locked = [note for note in found.notes if "holds an exclusive lock" in note]
    assert locked and all(f"pid {locker_pid}" in note for note in locked), found.notes
