import io
import logging
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy
from alembic import command
from sqlalchemy import text

from atsboost import migrations
from atsboost.errors import MigrationError, MigrationRefusedError
from atsboost.migrations.run.locks import lock_key
from tests.conftest import REPO, add_revision, catalog

INITIAL = "055d037ec299"
HEAD = "7c1f9a2b4d10"
PERFORMANCE_INDEXES = {
    "ix_users_login",
    "ix_subscriptions_user_status",
    "ix_subscriptions_renewals_due",
    "ix_subscription_plans_display",
}
PRODUCTION = {"ATSBOOST_ENV": "production", "DATABASE_DISABLE_SSL": "true"}


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
def engine(make_engine):
    return make_engine(DATABASE_APPLICATION_NAME="atsboost-test-observer")


def version(engine):
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()


def indexes(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE c.relnamespace = 'public'::regnamespace"
            )
        ).all()
    return dict(rows)


def test_upgrade_from_empty_reaches_head_and_matches_the_models(settings, engine):
    result = migrations.upgrade(settings)
    assert [r.id for r in result.applied] == [INITIAL, HEAD]
    assert all(r.upgrade and r.seconds >= 0 for r in result.applied)
    assert version(engine) == [HEAD]
    valid = {name for name, is_valid in indexes(engine).items() if is_valid}
    assert PERFORMANCE_INDEXES.issubset(valid)
    # alembic check: no drift between the models and the migrations.
    command.check(migrations.alembic_config(settings))


def test_second_upgrade_finds_nothing_to_do(settings):
    migrations.upgrade(settings)
    again = migrations.upgrade(settings)
    assert again.applied == []
    assert again.before == (HEAD,)


def test_downgrade_to_base_and_back_leaves_no_trace(settings, engine):
    empty = catalog(engine)
    migrations.upgrade(settings)
    at_head = catalog(engine)
    reverted = migrations.downgrade(settings, revision="base")
    assert [r.id for r in reverted.applied] == [HEAD, INITIAL]
    # Alembic keeps its (now empty) version table, and atsboost its checksums beside it; nothing else remains.
    bookkeeping = ("alembic_version", "atsboost_checksums")
    leftover = [item for item in catalog(engine) if not any(name in item for name in bookkeeping)]
    assert leftover == empty
    migrations.upgrade(settings)
    assert catalog(engine) == at_head


def test_updated_at_is_set_by_the_server(settings, engine):
    migrations.upgrade(settings)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (email, password_hash) VALUES ('a@example.com', 'x')"))
        conn.execute(text("UPDATE users SET created_at = now() - interval '1 day', updated_at = created_at"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE users SET is_active = false"))
        fresh = conn.execute(text("SELECT updated_at > now() - interval '1 minute' FROM users")).scalar_one()
    assert fresh


@pytest.mark.parametrize("start", [None, INITIAL])
def test_dry_run_prints_the_pending_sql_and_changes_nothing(settings, engine, start):
    if start:
        migrations.upgrade(settings, revision=start)
    before = catalog(engine)
    out = io.StringIO()
    result = migrations.upgrade(settings, dry_run=True, output=out)
    sql = out.getvalue()
    assert catalog(engine) == before
    assert result.dry_run and result.applied == []
    assert sql.startswith("-- atsboost dry run: nothing is applied.")
    assert "SET lock_timeout = '5000ms';" in sql
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_users_login" in sql
    if start:
        assert "-- 1 pending revision(s)" in sql
        assert "CREATE TABLE users" not in sql  # exactly the range current..head
    else:
        assert "-- 2 pending revision(s)" in sql
        assert "CREATE TABLE users" in sql


def test_dry_run_at_head_says_so(settings):
    migrations.upgrade(settings)
    out = io.StringIO()
    migrations.upgrade(settings, dry_run=True, output=out)
    assert "-- nothing to migrate: the database is at head" in out.getvalue()


def test_force_gate_refuses_then_allows(make_settings, engine):
    gated = make_settings(**PRODUCTION, MIGRATION_REQUIRE_FORCE="true")
    before = catalog(engine)
    with pytest.raises(MigrationRefusedError) as info:
        migrations.upgrade(gated)
    message = str(info.value)
    assert "refusing to apply 2 revision(s) in production (MIGRATION_REQUIRE_FORCE=true)" in message
    assert INITIAL in message and "MIGRATION_FORCE=true (or --force" in message
    assert catalog(engine) == before  # untouched: not even alembic_version
    # A dry run is always allowed.
    out = io.StringIO()
    migrations.upgrade(gated, dry_run=True, output=out)
    assert "CREATE TABLE users" in out.getvalue()
    # --force, or MIGRATION_FORCE=true, opens the gate.
    assert len(migrations.upgrade(gated, force=True).applied) == 2
    assert version(engine) == [HEAD]


def test_environment_force_opens_the_gate(make_settings, engine):
    forced = make_settings(**PRODUCTION, MIGRATION_REQUIRE_FORCE="true", MIGRATION_FORCE="true")
    migrations.upgrade(forced)
    assert version(engine) == [HEAD]


def test_production_downgrade_needs_a_local_force(make_settings, engine):
    production = make_settings(**PRODUCTION, MIGRATION_FORCE="true")
    migrations.upgrade(production)  # no MIGRATION_REQUIRE_FORCE: upgrades pass
    with pytest.raises(MigrationRefusedError) as info:
        migrations.downgrade(production, revision="-1")  # MIGRATION_FORCE=true does not count
    assert "A downgrade needs a decision on the command line: `atsboost-db migrate downgrade" in str(
        info.value
    )
    assert version(engine) == [HEAD]
    result = migrations.downgrade(production, revision="-1", force=True)
    assert version(engine) == [INITIAL] and result.after == (INITIAL,)


def test_production_downgrade_to_base_needs_allow_data_loss_and_lists_the_tables(make_settings, engine):
    production = make_settings(**PRODUCTION)
    migrations.upgrade(production)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (email, password_hash) VALUES ('a@b.io', 'x'), ('c@d.io', 'y')"))
    with pytest.raises(MigrationRefusedError) as info:
        migrations.downgrade(production, revision="base", force=True)
    message = str(info.value)
    assert "it would drop users (2 rows) (a downgrade to base)" in message
    assert "run again with --allow-data-loss as well as --force" in message
    assert version(engine) == [HEAD]
    migrations.downgrade(production, revision="base", force=True, allow_data_loss=True)
    assert version(engine) == []


def test_a_downgrade_that_drops_a_table_with_rows_is_held_back(make_settings, engine, alembic_project):
    add_revision(
        alembic_project,
        "notes01",
        """
        op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))
        """,
        'op.drop_table("notes")',
    )
    production = make_settings(**PRODUCTION, ATSBOOST_ALEMBIC_INI=str(alembic_project))
    migrations.upgrade(production)
    migrations.downgrade(production, revision="-1", force=True)  # the table is empty: nothing lost
    migrations.upgrade(production)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO notes VALUES (1)"))
    with pytest.raises(MigrationRefusedError, match=r"it would drop notes \(1 rows\)\. If that data may go"):
        migrations.downgrade(production, revision="-1", force=True)
    assert version(engine) == ["notes01"]


def test_a_downgrade_dry_run_says_what_it_reverts(settings):
    migrations.upgrade(settings)
    out = io.StringIO()
    migrations.downgrade(settings, revision="-1", dry_run=True, output=out)
    assert f"-- 1 revision(s) to revert, in order:\n--   {HEAD} (performance indexes" in out.getvalue()
    assert "DROP INDEX CONCURRENTLY" in out.getvalue()


def test_failing_revision_leaves_the_previous_revision_and_no_partial_table(
    make_settings, engine, alembic_project
):
    add_revision(
        alembic_project,
        "broken01",
        """
        op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO half_done VALUES (1)")
        op.execute("SELECT 1 / 0")
        """,
    )
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))
    with pytest.raises(MigrationError) as info:
        migrations.upgrade(settings)
    message = str(info.value)
    assert "revision broken01 (broken01) failed and was rolled back: division by zero" in message
    assert "Statement: SELECT 1 / 0" in message
    assert version(engine) == [HEAD]  # the two good revisions stay applied
    assert "relation r half_done" not in catalog(engine)


def test_blocked_migration_gives_up_and_names_the_blocker(make_settings, engine, alembic_project):
    add_revision(alembic_project, "needlock", 'op.add_column("users", sa.Column("nickname", sa.Text))')
    settings = make_settings(
        ATSBOOST_ALEMBIC_INI=str(alembic_project), MIGRATION_LOCK_TIMEOUT="0.5", MIGRATION_LOCK_RETRIES="1"
    )
    migrations.upgrade(settings, revision=HEAD)
    with engine.connect() as blocker:
        blocker_pid = blocker.execute(text("SELECT pg_backend_pid()")).scalar_one()
        blocker.execute(text("SELECT count(*) FROM users /* long report */"))  # holds ACCESS SHARE
        with pytest.raises(MigrationError) as info:
            migrations.upgrade(settings)
        blocker.rollback()
    message = str(info.value)  # the lock timeout and the retries are what bounded it
    assert "revision needlock (needlock) could not get a lock within MIGRATION_LOCK_TIMEOUT=0.5s" in message
    assert "after 2 attempts" in message
    assert f"blocked by pid {blocker_pid}" in message
    assert "idle in transaction" in message and "long report" in message
    assert version(engine) == [HEAD]
    # Once the blocker is gone the same migration goes through.
    migrations.upgrade(settings)
    assert version(engine) == ["needlock"]


def test_six_concurrent_upgrades_apply_each_revision_once(environ, engine):
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "atsboost", "migrate"],
            env={**environ, "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 6, outputs
    logs = "".join(err for _, err in outputs)
    assert logs.count(f"applied {INITIAL}") == 1
    assert logs.count(f"applied {HEAD}") == 1
    assert version(engine) == [HEAD]
    # Every one names the revision the database is really at, also those that waited for the lock.
    summaries = sorted(out.strip() for out, _ in outputs)
    assert summaries[0].startswith("applied 2 revision(s) in ") and summaries[0].endswith(f"now at {HEAD}")
    assert summaries[1:] == [f"nothing to migrate: the database is at {HEAD}"] * 5


def test_index_revision_runs_while_writes_go_on(settings, engine):
    migrations.upgrade(settings, revision=INITIAL)
    stop = threading.Event()
    written = []

    def write():
        n = 0
        while not stop.is_set():
            n += 1
            with engine.begin() as conn:
                conn.execute(
                    text("INSERT INTO users (email, password_hash) VALUES (:e, 'x')"),
                    {"e": f"u{n}@example.com"},
                )
            written.append(n)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.2)
        migrations.upgrade(settings)
    finally:
        stop.set()
        writer.join()
    assert len(written) > 10
    found = indexes(engine)
    assert all(found[name] for name in PERFORMANCE_INDEXES)
    assert all(found.values()), found


def test_planted_invalid_index_is_rebuilt(settings, engine):
    migrations.upgrade(settings, revision=INITIAL)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("INSERT INTO users (email, password_hash) VALUES ('a@x.io', 'x'), ('b@x.io', 'x')"))
        # A unique build on duplicate data fails and leaves an INVALID index behind.
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            conn.execute(text("CREATE UNIQUE INDEX CONCURRENTLY ix_users_login ON users (is_active)"))
    assert indexes(engine)["ix_users_login"] is False
    migrations.upgrade(settings)
    assert indexes(engine)["ix_users_login"] is True
    with engine.connect() as conn:
        definition = conn.execute(text("SELECT pg_get_indexdef('ix_users_login'::regclass)")).scalar_one()
    assert "lower((email)::text)" in definition and "INCLUDE (password_hash)" in definition


def test_handed_in_connection_and_engine_work(settings, make_engine, engine):
    other = make_engine()
    with other.connect() as conn:
        migrations.upgrade(settings, connection=conn, revision=INITIAL)
        assert conn.execute(text("SHOW lock_timeout")).scalar_one() == "0"  # restored
    assert version(engine) == [INITIAL]
    migrations.upgrade(settings, connection=other)
    assert version(engine) == [HEAD]


def test_status_lists_pending_without_writing(settings, engine):
    before = catalog(engine)
    state = migrations.status(settings)
    assert catalog(engine) == before
    assert state.current == () and state.heads == (HEAD,)
    assert [r.id for r in state.pending] == [INITIAL, HEAD]
    migrations.upgrade(settings)
    assert migrations.status(settings).up_to_date


@pytest.mark.parametrize("name", ["../x", "a b", "", "x/y", "naïve"])
def test_create_refuses_bad_names_before_writing(name, make_settings, alembic_project):
    versions = alembic_project.parent / "alembic" / "versions"
    before = sorted(versions.iterdir())
    with pytest.raises(MigrationError, match="use only letters, digits, '_' and '-'"):
        migrations.create(name, settings=make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project)))
    assert sorted(versions.iterdir()) == before


def test_create_writes_a_timestamped_revision_on_top(make_settings, alembic_project):
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))
    path = migrations.create("add_resume-table", settings=settings)
    assert path.parent == alembic_project.parent / "alembic" / "versions"
    assert path.name[:15].replace("_", "").isdigit()  # YYYY_MM_DD_HHMM
    assert path.name.endswith("_add_resume_table.py")
    assert f"down_revision: str | Sequence[str] | None = {HEAD!r}" in path.read_text()


def test_autogenerate_finds_nothing_when_models_match(make_settings, alembic_project):
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))
    migrations.upgrade(settings)
    with pytest.raises(MigrationError, match="the models match the database"):
        migrations.create("nothing_new", autogenerate=True, settings=settings)


def test_read_only_commands_create_no_version_table(settings, engine):
    command.current(migrations.alembic_config(settings))
    assert "relation r alembic_version" not in catalog(engine)


def test_alembic_cli_works_with_the_package_settings(environ, engine):
    run = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        env=environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert f"applied {HEAD} (performance indexes for the common queries) in" in run.stderr
    assert version(engine) == [HEAD]


def test_offline_sql_needs_no_database():
    run = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head", "--sql"],
        env={"NODE_ENV": "production", "PATH": "/usr/bin:/bin"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("SET lock_timeout = '5000ms';")
    assert "CREATE TABLE alembic_version" in run.stdout
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_subscription_plans_display" in run.stdout


def test_env_py_logging_keeps_the_application_loggers(environ):
    code = (
        "import logging; app = logging.getLogger('myapp');"
        "from atsboost import migrations; migrations.upgrade();"
        "assert not app.disabled, 'env.py disabled the application logger'; print('ok')"
    )
    run = subprocess.run([sys.executable, "-c", code], env=environ, cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_progress_is_logged_per_revision(settings, caplog):
    with caplog.at_level(logging.INFO, logger="atsboost.migrations"):
        migrations.upgrade(settings)
    lines = [r.getMessage() for r in caplog.records if r.name == "atsboost.migrations"]
    assert any(line.startswith(f"applying {INITIAL} (initial schema") for line in lines)
    assert any(
        line.startswith(f"applied {HEAD} (performance indexes") and line.endswith(" s") for line in lines
    )


def hold_migration_lock(engine):
    """Take the migration lock the way another migrator would; returns the connection holding it."""
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    key = lock_key("atsboost:migrate:alembic_version")
    assert conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one()
    return conn


def test_waiting_for_another_migrator_is_bounded(make_settings, engine):
    holder = hold_migration_lock(engine)
    try:
        holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
        started = time.monotonic()
        with pytest.raises(MigrationError) as info:
            migrations.upgrade(make_settings(MIGRATION_LOCK_WAIT="1"))
        assert time.monotonic() - started >= 1  # it waited its MIGRATION_LOCK_WAIT; the message says so
    finally:
        holder.close()
    assert str(info.value) == (
        f"another migrator (pid {holder_pid}) still holds the migration lock after 1 s; "
        "let it finish, or raise MIGRATION_LOCK_WAIT"
    )


def test_a_database_at_head_never_waits_for_the_lock(make_settings, engine):
    settings = make_settings(MIGRATION_LOCK_WAIT="0")
    migrations.upgrade(settings)
    holder = hold_migration_lock(engine)
    try:
        result = migrations.upgrade(settings)  # would fail at once if it tried the held lock
    finally:
        holder.close()
    assert result.applied == [] and result.before == (HEAD,)


def test_alembic_x_force_opens_the_gate(environ, engine):
    env = {
        **environ,
        "ATSBOOST_ENV": "production",
        "DATABASE_DISABLE_SSL": "true",
        "MIGRATION_REQUIRE_FORCE": "1",
    }

    def alembic(*args):
        return subprocess.run(
            [sys.executable, "-m", "alembic", *args, "upgrade", "head"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = alembic()
    assert refused.returncode != 0
    assert "FAILED: refusing to apply 2 revision(s) in production" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    forced = alembic("-x", "force=true")
    assert forced.returncode == 0, forced.stderr
    assert version(engine) == [HEAD]


def test_tools_calling_alembic_s_command_api_get_the_same_run(settings, engine, caplog):
    """pytest-alembic and the like call alembic.command directly: direction and plan still come out right."""

    def config():
        return migrations.alembic_config(settings)

    with caplog.at_level(logging.INFO, logger="atsboost.migrations"):
        command.upgrade(config(), "heads")
    assert version(engine) == [HEAD]
    assert f"applied {HEAD} (performance indexes" in caplog.text
    command.downgrade(config(), "-1")
    assert version(engine) == [INITIAL]
    command.upgrade(config(), "+1")
    assert version(engine) == [HEAD]
    command.downgrade(config(), INITIAL)
    assert version(engine) == [INITIAL]
    command.downgrade(config(), "base")
    assert version(engine) == []


def test_a_failure_after_a_step_outside_the_transaction_says_what_stayed_behind(
    make_settings, engine, alembic_project
):
    steps = """
        op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.Text){}
        )
        from atsboost.migrations.ops import create_index_concurrently
        create_index_concurrently("ix_notes_body", "notes", ["body"])
        {}
        """
    add_revision(alembic_project, "notes02", steps.format("", 'op.execute("SELECT 1 / 0")'))
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))
    with pytest.raises(MigrationError) as info:
        migrations.upgrade(settings)
    message = str(info.value)
    assert "revision notes02 (notes02) failed: division by zero" in message
    stayed = set(message.split("these objects stayed behind: ", 1)[1].split(";", 1)[0].split(", "))
    assert {"table public.notes", "index public.ix_notes_body", "sequence public.notes_id_seq"} <= stayed
    assert "was rolled back" not in message
    assert version(engine) == [HEAD]
    # Written idempotently, as the message advises, the same revision now converges.
    for path in (alembic_project.parent / "alembic" / "versions").glob("*notes02*"):
        path.unlink()
    add_revision(alembic_project, "notes02", steps.format(", if_not_exists=True", "pass"))
    migrations.upgrade(settings)
    assert version(engine) == ["notes02"]


def test_a_half_applied_revision_names_the_statements_that_stayed_committed(
    make_settings, engine, alembic_project
):
    add_revision(
        alembic_project,
        "seed02",
        'op.execute("CREATE TABLE IF NOT EXISTS tally (n int PRIMARY KEY, hits int NOT NULL DEFAULT 0)")',
    )
    steps = """
        op.execute("INSERT INTO tally (n) SELECT g FROM generate_series(1, 10) AS g ON CONFLICT DO NOTHING")
        op.execute("UPDATE tally SET hits = hits + 1 WHERE hits = 0")
        from atsboost.migrations.ops import create_index_concurrently
        create_index_concurrently("ix_tally_hits", "tally", ["hits"])
        op.execute("INSERT INTO tally (n) VALUES {}")
        """
    add_revision(alembic_project, "data03", steps.format("(1)"))  # a duplicate key, after the block
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))
    with pytest.raises(MigrationError) as info:
        migrations.upgrade(settings)
    message = str(info.value)
    assert "revision data03 (data03) failed: duplicate key value" in message
    committed = message.split("these statements had committed: ", 1)[1].split("; the recorded", 1)[0]
    assert committed.split("; ") == [
        "INSERT INTO tally (n) SELECT g FROM generate_series(1, 10) AS g ON CONFLICT DO NOTHING (10 rows)",
        "UPDATE tally SET hits = hits + 1 WHERE hits = 0 (10 rows)",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_tally_hits ON tally (hits)",
    ]
    assert "these objects stayed behind: index public.ix_tally_hits" in message
    assert version(engine) == ["seed02"]
    # Fixed, the same revision finishes: its earlier steps skip what they did already.
    for path in (alembic_project.parent / "alembic" / "versions").glob("*data03*"):
        path.unlink()
    add_revision(alembic_project, "data03", steps.format("(11)"))
    migrations.upgrade(settings)
    assert version(engine) == ["data03"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*), sum(hits) FROM tally")).one() == (11, 10)


def test_a_rerun_that_finds_its_own_leftover_says_to_drop_it(make_settings, engine, alembic_project):
    add_revision(alembic_project, "left02", 'op.execute("CREATE TABLE leftover (id int)")')
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE leftover (id int)"))  # as an earlier failed run would leave it
    with pytest.raises(
        MigrationError, match="perhaps left by an earlier failed run of this revision: drop it"
    ):
        migrations.upgrade(settings)


def test_the_dry_run_says_an_invalid_index_will_be_rebuilt(settings, engine):
    migrations.upgrade(settings, revision=INITIAL)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("INSERT INTO users (email, password_hash) VALUES ('a@x.io', 'x'), ('b@x.io', 'x')"))
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            conn.execute(text("CREATE UNIQUE INDEX CONCURRENTLY ix_users_login ON users (is_active)"))
    out = io.StringIO()
    migrations.upgrade(settings, dry_run=True, output=out)
    expected = (
        "-- note: index ix_users_login is INVALID (a failed concurrent build); the run drops and rebuilds it"
    )
    assert expected in out.getvalue()
