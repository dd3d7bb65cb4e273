"""The lock trace: the locks pending statements really take, on the real tables, and nothing changed."""

from atsboost import migrations
from atsboost.migrations.trace import trace
from tests.conftest import add_revision, catalog

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
