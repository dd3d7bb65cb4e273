"""The lock trace: the locks pending statements really take, on the real tables, and nothing changed."""

import threading

import pytest
from sqlalchemy import text

from atsboost import migrations
from atsboost.migrations.lint.trace import BLOCKS, trace
from tests.conftest import add_revision, catalog, wait_until
from tests.migrations.lint.corpus import DANGEROUS, SAFE
from tests.migrations.lint.corpus import SETUP as CORPUS_SETUP

ROWS = """
op.execute(
    "INSERT INTO users (email, password_hash, note, score, ratio, ip, seen) "
    "VALUES ('a@example.com', 'x', 'n', 1, 1, '10.0.0.0/8', now())"
)
op.execute(
    "INSERT INTO subscription_plans (code, name, price_cents, billing_interval, amount) "
    "VALUES ('p', 'P', 1, 'month', 1.5)"
)
"""
SETUP = """
op.execute("CREATE TABLE big (id int PRIMARY KEY, n int)")
op.execute("INSERT INTO big SELECT g, g FROM generate_series(1, 100000) g")
op.execute("ANALYZE big")
"""


def test_the_trace_shows_real_locks_sizes_and_rewrites_and_changes_nothing(
    make_settings, make_engine, alembic_project, invoke, environ
):
    add_revision(alembic_project, "big01", SETUP)
    add_revision(
        alembic_project,
        "big02",
        'op.execute("CREATE INDEX ix_big_n ON big (n)")\n'
        'op.execute("ALTER TABLE big ALTER COLUMN n TYPE bigint")',
    )
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))
    migrations.upgrade(settings, revision="big01")
    engine = make_engine()
    before = catalog(engine)

    lines = trace(settings, ["big02"])
    index, retype = (
        [line for line in lines if line.table == "big" and word in line.statement]
        for word in ("INDEX", "TYPE")
    )
    assert [(line.lock, line.rewritten) for line in index] == [("ShareLock", False)]
    assert index[0].rows == 100000 and (index[0].bytes or 0) > 1_000_000
    assert "blocks writes" in str(index[0]) and "~100,000 rows" in str(index[0])
    assert [(line.lock, line.rewritten) for line in retype] == [("AccessExclusiveLock", True)]
    assert "rewritten" in str(retype[0]) and "blocks reads and writes" in str(retype[0])
    assert catalog(engine) == before  # the trace was rolled back

    shown = invoke(
        "migrate", "lint", "--trace", env={**environ, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    )
    assert "big: AccessExclusiveLock, rewritten" in shown.stdout
    assert "nothing was changed" in shown.stdout
    assert catalog(engine) == before


def test_a_concurrent_build_is_reported_as_not_traced(make_settings, alembic_project):
    add_revision(
        alembic_project,
        "big03",
        "from atsboost.migrations.ops import create_index_concurrently\n"
        'create_index_concurrently("ix_u", "users", ["role"])',
    )
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))
    migrations.upgrade(settings, revision="7c1f9a2b4d10")
    [line] = trace(settings, ["big03"])
    assert not line.traced and line.table == "users" and line.lock == "ShareUpdateExclusiveLock"


def test_the_dry_run_traces_too_and_a_staging_copy_can_be_traced(
    make_settings, alembic_project, invoke, environ, database_url, unused_tcp_port
):
    add_revision(alembic_project, "big01", SETUP)
    add_revision(alembic_project, "big02", 'op.execute("ALTER TABLE big ALTER COLUMN n TYPE bigint")')
    migrations.upgrade(make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project)), revision="big01")
    env = {**environ, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    dry = invoke("migrate", "--dry-run", "--trace", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "-- atsboost dry run" in dry.stdout and "-- lint: revision big02: AB005 on big" in dry.stdout
    assert "big: AccessExclusiveLock, rewritten" in dry.stdout
    assert invoke("migrate", "--trace", env=env).returncode == 2  # a real run takes its locks for real

    unreachable = {**env, "DATABASE_URL": f"postgresql://app@127.0.0.1:{unused_tcp_port}/prod"}
    staging = database_url.set(drivername="postgresql").render_as_string(hide_password=False)
    staged = invoke(
        "migrate", "lint", "--range", "7c1f9a2b4d10:big02", "--trace-url", staging, env=unreachable
    )
    assert "big: AccessExclusiveLock, rewritten" in staged.stdout, staged.stderr


HELD_TO_THE_END = """
op.execute("ALTER TABLE big ADD COLUMN c int")
op.execute("ALTER TABLE big ALTER COLUMN n TYPE bigint")
op.execute("ALTER TABLE big ADD CONSTRAINT fk_big_ref FOREIGN KEY (n) REFERENCES ref (id)")
"""
REF = """
op.execute("CREATE TABLE ref (id int PRIMARY KEY)")
op.execute("INSERT INTO ref SELECT g FROM generate_series(1, 100000) g")
"""
# The relation locks a backend holds (granted) or waits for, on the test's tables.
LOCKS_OF = text(
    "SELECT c.relname, l.mode, l.granted FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
    "WHERE l.pid = :pid AND c.relname IN ('big', 'ref')"
)
WAITING = text(
    "SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
    "WHERE c.relname = 'ref' AND NOT l.granted AND l.mode = 'ShareRowExclusiveLock'"
)


def strongest(modes):
    return min(modes, key=list(BLOCKS).index)


def locks_while_the_foreign_key_waits(engine, settings):
    """Run the revision for real, hold its FOREIGN KEY back, and read its locks from another session."""
    with engine.connect() as blocker, engine.connect() as observer:
        blocker.execute(text("LOCK TABLE ref IN ROW EXCLUSIVE MODE"))  # the FOREIGN KEY waits on this
        run = threading.Thread(target=migrations.upgrade, args=(settings,))
        run.start()
        try:
            assert wait_until(lambda: observer.execute(WAITING).first() is not None, 30)
            pid = observer.execute(WAITING).scalar()
            rows = observer.execute(LOCKS_OF, {"pid": pid}).all()
            observer.rollback()
        finally:
            blocker.rollback()
            run.join(60)
    return rows


def test_each_statement_shows_the_locks_held_to_the_end_as_pg_locks_does(
    make_settings, make_engine, alembic_project
):
    add_revision(alembic_project, "big01", SETUP + REF)
    add_revision(alembic_project, "big02", HELD_TO_THE_END)
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))
    migrations.upgrade(settings, revision="big01")
    lines = trace(settings, ["big02"])
    add, retype, foreign = (
        [line for line in lines if word in line.statement] for word in ("ADD COLUMN", "TYPE", "FOREIGN")
    )
    assert [(line.table, line.lock, line.since) for line in add] == [("big", "AccessExclusiveLock", None)]
    assert [(line.table, line.lock, line.since, line.rewritten) for line in retype] == [
        ("big", "AccessExclusiveLock", add[0].statement, True)
    ]
    traced = {line.table: line.lock for line in foreign}
    assert traced == {"big": "AccessExclusiveLock", "ref": "ShareRowExclusiveLock"}
    assert "blocks reads and writes" in str(next(line for line in foreign if line.table == "big"))
    assert "(held since: ALTER TABLE big ADD COLUMN c int)" in str(foreign[0])

    rows = locks_while_the_foreign_key_waits(make_engine(), settings)
    granted = {
        table: strongest([m for t, m, g in rows if t == table and g])
        for table in {r[0] for r in rows if r[2]}
    }
    waiting = {(table, mode) for table, mode, is_granted in rows if not is_granted}
    assert granted == {line.table: line.lock for line in retype}  # what the trace held after the type change
    assert waiting == {("ref", traced["ref"])}  # what the FOREIGN KEY asks for
    assert migrations.status(settings).up_to_date


TYPE_CASES = [case for case in DANGEROUS if "AB005" in case.rules] + [
    case for case in SAFE if case.of == "AB005"
]


@pytest.mark.parametrize("case", TYPE_CASES, ids=[case.name for case in TYPE_CASES])
def test_the_lint_says_rewrite_exactly_when_the_server_rewrites(
    case, make_settings, make_engine, alembic_project
):
    add_revision(alembic_project, "corpus00", CORPUS_SETUP + ROWS)
    add_revision(alembic_project, "case01", case.body)
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))
    migrations.upgrade(settings, revision="corpus00")
    with make_engine().connect() as conn:
        utc = conn.execute(text("SHOW TimeZone")).scalar() in ("UTC", "Etc/UTC")
    lines = trace(settings, ["case01"])
    assert [line.note for line in lines if line.note] == []
    rewritten = any(line.rewritten for line in lines)
    # PostgreSQL skips this rewrite only when the session's TimeZone is UTC; the lint cannot know it
    by_time_zone = utc and "timestamp" in case.name and "precision" not in case.name
    assert rewritten == ("AB005" in case.rules and not by_time_zone)
