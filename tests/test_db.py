import pickle
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from atsboost import db
from atsboost.config.settings import get_settings, load_settings
from atsboost.errors import DatabaseUnavailableError, MigrationRefusedError
from atsboost.runtime.database import Database as RuntimeDatabase
from tests.conftest import assert_waited_within


@pytest.fixture
def notes_engine(make_engine):
    engine = make_engine()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)"))
    return engine


def bodies(engine):
    with engine.connect() as conn:
        return conn.execute(text("SELECT body FROM notes ORDER BY id")).scalars().all()


def test_session_scope_commits_on_success(notes_engine):
    with db.session_scope(notes_engine) as session:
        session.execute(text("INSERT INTO notes (body) VALUES ('kept')"))
    assert bodies(notes_engine) == ["kept"]


def test_session_scope_rolls_back_on_error(notes_engine):
    with pytest.raises(RuntimeError, match="boom"), db.session_scope(notes_engine) as session:
        session.execute(text("INSERT INTO notes (body) VALUES ('lost')"))
        raise RuntimeError("boom")
    assert bodies(notes_engine) == []


def test_session_scope_rolls_back_a_failed_statement(notes_engine):
    with pytest.raises(Exception, match="not-null"), db.session_scope(notes_engine) as session:
        session.execute(text("INSERT INTO notes (body) VALUES ('lost too')"))
        session.execute(text("INSERT INTO notes (body) VALUES (NULL)"))
    assert bodies(notes_engine) == []
    assert notes_engine.pool.checkedout() == 0


def test_get_engine_is_process_wide_and_built_from_the_environment(environ, monkeypatch):
    for name, value in {**environ, "DATABASE_APPLICATION_NAME": "atsboost-test-global"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        engine = db.get_engine()
        assert db.get_engine() is engine
        with db.session_scope() as session:
            assert session.execute(text("SELECT current_setting('application_name')")).scalar_one() == (
                "atsboost-test-global"
            )
    finally:
        db.dispose_engine()
        get_settings.cache_clear()


def test_importing_connects_to_nothing_and_loads_no_sqlalchemy(unused_tcp_port):
    code = (
        "import sys, atsboost, atsboost.cli;"
        "assert 'sqlalchemy' not in sys.modules, 'atsboost import pulled in SQLAlchemy';"
        "import atsboost.db;"
        "print('imported')"
    )
    env = {"ATSBOOST_ENV": "production", "DATABASE_URL": f"postgresql://u:p@127.0.0.1:{unused_tcp_port}/x"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "imported"


def applied_revisions(engine):
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar_one()
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() if exists else []


def test_startup_migrates_to_head(make_settings, make_engine):
    db.startup(make_settings())
    assert applied_revisions(make_engine()) == ["7c1f9a2b4d10"]


def test_startup_can_be_told_not_to_migrate(make_settings, make_engine):
    db.startup(make_settings(DATABASE_MIGRATE_ON_STARTUP="false"))
    assert applied_revisions(make_engine()) == []


def test_startup_runs_the_hooks_it_is_given_instead_of_migrating(make_settings, make_engine):
    settings = make_settings()
    seen: list[object] = []
    database = db.Database(settings, before_serving=[seen.append])
    try:
        database.startup()
    finally:
        database.shutdown()
    assert seen == [settings]
    assert applied_revisions(make_engine()) == []  # the hooks replaced the migration


def test_the_runtime_s_database_migrates_nothing_by_itself(make_settings, make_engine):
    database = RuntimeDatabase(make_settings())
    try:
        database.startup()
    finally:
        database.shutdown()
    assert database.before_serving == ()
    assert applied_revisions(make_engine()) == []


def test_startup_fails_fast_when_the_production_gate_is_closed(make_settings, make_engine):
    settings = make_settings(
        ATSBOOST_ENV="production", DATABASE_DISABLE_SSL="true", MIGRATION_REQUIRE_FORCE="true"
    )
    with pytest.raises(MigrationRefusedError) as info:
        db.startup(settings)
    assert "refusing to apply 2 revision(s) in production" in str(info.value)
    assert "055d037ec299 (initial schema" in str(info.value)
    assert applied_revisions(make_engine()) == []


@pytest.fixture
def process_wide(monkeypatch):
    """Give the test a fresh process-wide database, and leave no engine behind."""
    monkeypatch.setattr(db, "default", db.Database())
    yield
    db.dispose_engine()


def test_startup_waits_for_a_database_that_is_still_starting(controlled_server, process_wide):
    settings = load_settings(controlled_server.environ(DATABASE_CONNECT_TIMEOUT="15"))
    controlled_server.stop()
    threading.Timer(1.0, controlled_server.start).start()
    started = time.monotonic()
    engine = db.startup(settings)
    assert time.monotonic() - started >= 0.9
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


def test_startup_gives_up_after_the_connect_timeout(unused_tcp_port, process_wide, caplog):
    settings = load_settings(
        {
            "ATSBOOST_ENV": "testing",
            "DATABASE_URL": f"postgresql://app:pw@127.0.0.1:{unused_tcp_port}/db",
            "DATABASE_CONNECT_TIMEOUT": "1",
        }
    )
    with pytest.raises(
        DatabaseUnavailableError, match=rf"cannot connect to .*app:\*\*\*@127.0.0.1:{unused_tcp_port}"
    ):
        db.startup(settings)
    assert_waited_within(caplog, seconds=1.0)


def test_an_unreachable_database_is_also_sqlalchemy_s_operational_error(unused_tcp_port, process_wide):
    """An application's existing ``except OperationalError`` keeps catching it, with the password masked."""
    url = f"postgresql://app:s3cret@127.0.0.1:{unused_tcp_port}/db"
    settings = load_settings(
        {"ATSBOOST_ENV": "testing", "DATABASE_URL": url, "DATABASE_CONNECT_TIMEOUT": "1"}
    )
    with pytest.raises(sqlalchemy.exc.OperationalError) as caught:
        db.startup(settings)
    assert isinstance(caught.value, DatabaseUnavailableError)
    shown = f"{caught.value} {caught.value!r} {caught.value.args}"
    assert "cannot connect to" in shown and "s3cret" not in shown
    assert (
        caught.value.__cause__ is None and pickle.loads(pickle.dumps(caught.value)).args == caught.value.args
    )


def test_health_state_from_the_monitor_and_without_it(make_settings, process_wide):
    settings = make_settings(DATABASE_HEALTH_MONITOR="true", DATABASE_HEALTH_INTERVAL="0.2")
    db.startup(settings)
    deadline = time.monotonic() + 3
    while db.health_state()["status"] != "healthy" and time.monotonic() < deadline:
        time.sleep(0.05)
    state = db.health_state()
    assert state["status"] == "healthy" and state["consecutive_failures"] == 0
    assert state["pool_capacity"] == 5
    db.dispose_engine()
    db.startup(make_settings(DATABASE_MIGRATE_ON_STARTUP="false"))  # no monitor: one live check
    assert db.health_state()["status"] == "healthy"


def monitors() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "atsboost-health-monitor" and t.is_alive()]


def test_a_second_startup_keeps_one_monitor_and_shutdown_stops_it(make_settings, process_wide):
    settings = make_settings(DATABASE_HEALTH_MONITOR="true", DATABASE_HEALTH_INTERVAL="0.2")
    before = len(monitors())
    db.startup(settings)
    db.startup(settings)
    assert len(monitors()) == before + 1
    db.shutdown(timeout=5)
    assert len(monitors()) == before


def test_startups_racing_in_threads_start_one_monitor(make_settings, process_wide):
    settings = make_settings(DATABASE_HEALTH_MONITOR="true", DATABASE_HEALTH_INTERVAL="0.2")
    before = len(monitors())
    racers = [threading.Thread(target=db.startup, args=(settings,)) for _ in range(3)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    assert len(monitors()) == before + 1
    db.shutdown(timeout=5)
    assert len(monitors()) == before
