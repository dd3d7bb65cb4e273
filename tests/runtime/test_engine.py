import threading
import traceback

import pytest
import sqlalchemy
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.errors import DatabaseUnavailableError
from atsboost.runtime.engine import create_engine, engine_options, server_info
from atsboost.runtime.pool.queue import IdleTimeoutQueuePool
from tests.conftest import wait_until


def backends(engine, application_name):
    """Count this test database's server connections that carry this application_name.

    By database too: a second suite on the same server runs the same tests with the same names.
    """
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
                " AND datname = current_database() AND pid <> pg_backend_pid()"
            ),
            {"name": application_name},
        ).scalar_one()


def test_engine_options_follow_the_settings(make_settings):
    options = engine_options(
        make_settings(DATABASE_POOL_SIZE="4", DATABASE_MAX_OVERFLOW="2", DATABASE_POOL_TIMEOUT="7")
    )
    assert options["poolclass"] is IdleTimeoutQueuePool
    assert (options["pool_size"], options["max_overflow"], options["pool_timeout"]) == (4, 2, 7)
    assert options["pool_use_lifo"] is True
    assert options["idle_timeout"] == 10  # testing default


def test_connections_carry_application_name_and_statement_timeout(make_engine):
    engine = make_engine(DATABASE_APPLICATION_NAME="atsboost-test-conn", DATABASE_STATEMENT_TIMEOUT="1234")
    assert isinstance(engine.pool, IdleTimeoutQueuePool)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW application_name")).scalar_one() == "atsboost-test-conn"
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "1234ms"


def test_statement_timeout_cancels_a_long_query(make_engine):
    engine = make_engine(DATABASE_STATEMENT_TIMEOUT="200")
    with engine.connect() as conn, pytest.raises(sqlalchemy.exc.OperationalError, match="statement timeout"):
        conn.execute(text("SELECT pg_sleep(2)"))


def test_pool_size_caps_server_connections(make_engine):
    name = "atsboost-test-cap"
    engine = make_engine(DATABASE_POOL_SIZE="2", DATABASE_POOL_TIMEOUT="1", DATABASE_APPLICATION_NAME=name)
    held = [engine.connect(), engine.connect()]
    try:
        for conn in held:
            conn.execute(text("SELECT 1"))
        with pytest.raises(sqlalchemy.exc.TimeoutError, match="QueuePool limit of size 2 overflow 0"):
            engine.connect()
        observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-test-observer")
        assert backends(observer, name) == 2
    finally:
        for conn in held:
            conn.close()


def test_overflow_allows_extra_connections_and_closes_them_on_return(make_engine):
    name = "atsboost-test-overflow"
    engine = make_engine(DATABASE_POOL_SIZE="1", DATABASE_MAX_OVERFLOW="2", DATABASE_APPLICATION_NAME=name)
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-test-observer")
    held = [engine.connect() for _ in range(3)]
    for conn in held:
        conn.execute(text("SELECT 1"))
    assert backends(observer, name) == 3
    for conn in held:
        conn.close()
    assert engine.pool.checkedin() == 1  # the two overflow connections were closed on return
    # Their backends leave pg_stat_activity once they have exited, a moment after the close.
    assert wait_until(lambda: backends(observer, name) == 1, timeout=10)


def test_threads_share_the_pool_without_exceeding_it(make_engine):
    name = "atsboost-test-threads"
    engine = make_engine(DATABASE_POOL_SIZE="3", DATABASE_APPLICATION_NAME=name)
    errors = []

    def work():
        try:
            for _ in range(20):
                with engine.connect() as conn:
                    conn.execute(text("SELECT pg_sleep(0.002)"))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert engine.pool.checkedin() <= 3


def test_server_info_describes_the_database(make_engine, database_url):
    info = server_info(make_engine(DATABASE_DISABLE_SSL="true"))
    assert info.database == database_url.database
    assert info.version.split(".")[0].isdigit()
    assert info.ssl is False
    assert info.latency_ms > 0


def test_unreachable_server_error_names_the_url_but_not_the_password(unused_tcp_port):
    secret = "hunter2-very-secret"
    settings = load_settings(
        {
            "ATSBOOST_ENV": "testing",
            "DATABASE_URL": f"postgresql://app:{secret}@127.0.0.1:{unused_tcp_port}/db",
        }
    )
    engine = create_engine(settings)
    with pytest.raises(DatabaseUnavailableError) as info:
        server_info(engine)
    message = str(info.value)
    assert f"cannot connect to postgresql+psycopg://app:***@127.0.0.1:{unused_tcp_port}/db" in message
    assert "check that the server is running" in message
    assert secret not in "".join(traceback.format_exception(info.value))


PROVIDER_QUERY = "connect_timeout=5&application_name=from-url&keepalives=1&tcp_user_timeout=9000"


def provider_url(database_url, query=PROVIDER_QUERY):
    """A provider's copy-paste URL: libpq parameters atsboost also sets, in the query."""
    return database_url.render_as_string(hide_password=False) + ("&" if database_url.query else "?") + query


def test_a_provider_s_url_parameters_win_on_every_connection(database_url, invoke):
    options = "options=-c%20work_mem%3D7MB"
    settings = load_settings(
        {
            "ATSBOOST_ENV": "testing",
            "DATABASE_URL": provider_url(database_url, f"{PROVIDER_QUERY}&{options}"),
            "DATABASE_STATEMENT_TIMEOUT": "4321",
            "DATABASE_APPLICATION_NAME": "from-env",
        }
    )
    engine = create_engine(settings)
    try:
        with engine.connect() as conn:
            names = ("application_name", "work_mem", "statement_timeout")  # (tcp_user_timeout: TCP only)
            shown = [conn.execute(text(f"SHOW {name}")).scalar_one() for name in names]
    finally:
        engine.dispose()
    assert shown == ["from-url", "7MB", "4321ms"]  # options joined with atsboost's statement timeout
    env = {"ATSBOOST_ENV": "testing", "DATABASE_URL": provider_url(database_url)}
    for args in (["migrate", "status"], ["migrate", "--dry-run"], ["migrate"], ["health", "--json"]):
        ran = invoke(*args, env=env)
        assert ran.returncode in (0, 3), (args, ran.stderr)  # 3: migrate status with revisions pending
        assert "Traceback" not in ran.stderr
    shown_config = invoke("config", env=env).stdout
    assert "connect_timeout=5 (DATABASE_URL)" in shown_config
    assert "keepalives_idle=5 (DATABASE_STALL_TIMEOUT)" in shown_config
