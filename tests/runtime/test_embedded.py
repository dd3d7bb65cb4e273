import subprocess
import sys

import psycopg
import pytest

from atsboost.runtime import embedded

pytestmark = pytest.mark.one_server  # the embedded server's own life, in both runs the same


def postmaster_pid(directory):
    return int((directory / "pgdata" / "postmaster.pid").read_text().split()[0])


def test_comes_up_from_nothing_then_is_reused_then_stops(tmp_path, run_cli):
    directory = tmp_path / "dev"
    env = {"ATSBOOST_EMBEDDED_DIR": str(directory)}

    first = run_cli("dev-db", "url", env=env)
    assert first.returncode == 0, first.stderr
    assert f"the embedded PostgreSQL keeps its data in {directory}" in first.stderr
    assert (directory / "pgdata" / "PG_VERSION").exists()
    assert (directory / ".gitignore").read_text().splitlines()[-1] == "*"
    pid = postmaster_pid(directory)

    second = run_cli("dev-db", "url", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert postmaster_pid(directory) == pid  # the same server, not a new one

    url = first.stdout.strip()
    assert url.startswith("postgresql://postgres@/atsboost?host=")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("atsboost",)

    stopped = run_cli("dev-db", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped the embedded PostgreSQL" in stopped.stdout
    assert not embedded.is_running(directory)
    again = run_cli("dev-db", "stop", env=env)
    assert "is not running" in again.stdout


def test_the_app_uses_it_when_database_url_is_unset(tmp_path, run_cli):
    directory = tmp_path / "dev"
    try:
        result = run_cli("config", "--connect", env={"ATSBOOST_EMBEDDED_DIR": str(directory)})
        assert result.returncode == 0, result.stderr
        assert f"using the embedded PostgreSQL in {directory / 'pgdata'} (database atsboost)" in result.stderr
        assert "embedded           yes" in result.stdout
        assert "database atsboost as postgres" in result.stdout
    finally:
        embedded.stop(directory)


def test_without_the_extra_the_error_says_what_to_do(tmp_path):
    code = (
        "import sys; sys.modules['pgserver'] = None;"
        "from atsboost.cli import main; sys.argv = ['atsboost-db', 'config', '--connect']; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"ATSBOOST_EMBEDDED_DIR": str(tmp_path / "dev")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: DATABASE_URL is not set and the embedded PostgreSQL is not installed; "
        "set DATABASE_URL to your PostgreSQL server, or install pip install 'atsboost[embedded]'"
    )
    assert "Traceback" not in result.stderr


def test_init_says_the_server_once_and_how_to_stop_it_and_reset_starts_afresh(tmp_path, run_cli):
    directory = tmp_path / "dev"
    env = {"ATSBOOST_EMBEDDED_DIR": str(directory)}
    try:
        init = run_cli("init", env=env)
        assert init.returncode == 0, init.stderr
        assert init.stderr.count("using the embedded PostgreSQL in") == 1  # once, for every connection
        assert "`atsboost-db dev-db stop` stops it" in init.stderr
        url = run_cli("dev-db", "url", env=env).stdout.strip()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE scratch (id int)")
            conn.execute("UPDATE subscription_plans SET price_cents = 1")
        reset = run_cli("dev-db", "reset", env=env)
        assert reset.returncode == 0, reset.stderr
        assert "dropped and created the embedded database" in reset.stdout
        assert "revision  7c1f9a2b4d10 (applied 2 revision(s) now)" in reset.stdout
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT to_regclass('scratch')").fetchone() == (None,)
            assert conn.execute(
                "SELECT min(price_cents) FROM subscription_plans WHERE code = 'pro'"
            ).fetchone() == (1900,)
    finally:
        embedded.stop(directory)


def test_reset_is_refused_outside_development_and_drops_nothing(run_cli, environ, make_engine):
    with make_engine().begin() as conn:
        conn.exec_driver_sql("CREATE TABLE kept (id int)")
    refused = run_cli("dev-db", "reset", env=environ)
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: dev-db reset drops the embedded development database only")
    assert "Traceback" not in refused.stderr
    with make_engine().connect() as conn:
        assert conn.exec_driver_sql("SELECT to_regclass('kept') IS NOT NULL").scalar_one()
