"""Each common database fault reads as one line with its fix, in every command and under plain alembic."""

import socket
import subprocess
import sys

import pytest
import sqlalchemy
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.errors import DatabaseUnavailableError
from atsboost.runtime.database import Database
from tests.conftest import REPO, own_cluster, server_binaries

PASSWORD = "Corr3ct-horse-battery"
WRONG = "Wr0ng-pw-planted"
COMMANDS = [
    ["config", "--connect"],
    ["migrate"],
    ["migrate", "--dry-run"],
    ["migrate", "status"],
    ["seed"],
    ["init"],
]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def guarded():
    """A cluster that wants a password over TCP, a role with no connection slot, a closed database."""
    port = free_port()
    with own_cluster(server_binaries(), port=port, password=PASSWORD) as server:
        admin = sqlalchemy.create_engine(server.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE ROLE full_role LOGIN PASSWORD '{PASSWORD}' CONNECTION LIMIT 0"))
            conn.execute(text(f"CREATE ROLE outsider LOGIN PASSWORD '{PASSWORD}'"))
            conn.execute(text("CREATE DATABASE closed"))
            conn.execute(text("REVOKE CONNECT ON DATABASE closed FROM PUBLIC"))
        admin.dispose()
        yield port


def faults(port):
    base = f"127.0.0.1:{port}"
    return {
        "wrong password": (
            f"postgres:{WRONG}@{base}/postgres",
            {},
            "fix the user or password in DATABASE_URL",
        ),
        "host down": (
            f"postgres:{WRONG}@127.0.0.1:{free_port()}/postgres",
            {},
            "check that the server is running",
        ),
        # A role that may not create databases: `init` would create one for a role that may.
        "database missing": (f"outsider:{PASSWORD}@{base}/nosuchdb", {}, "the database does not exist"),
        "SSL refused": (
            f"postgres:{PASSWORD}@{base}/postgres",
            {"ATSBOOST_ENV": "production", "ADMIN_INITIAL_PASSWORD": "a-long-enough-admin-pw"},
            "set DATABASE_DISABLE_SSL=true",
        ),
        "too many clients": (f"full_role:{PASSWORD}@{base}/postgres", {}, "no connection slot left"),
        "permission denied": (f"outsider:{PASSWORD}@{base}/closed", {}, "lacks a privilege this needs"),
    }


FAULTS = list(faults(0))


def environment(guarded, fault):
    url, extra, advice = faults(guarded)[fault]
    return {"ATSBOOST_ENV": "testing", "DATABASE_URL": f"postgresql://{url}", **extra}, advice


def assert_one_line(output, returncode, advice):
    assert returncode == 1, output
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    # alembic logs its error, then prints it as FAILED: the line to read is the FAILED one.
    last = next((line for line in lines if line.startswith("FAILED: ")), lines[-1])
    assert last.startswith(
        (
            "Error: cannot connect to",
            "Error: the database at",
            "Error: the database nosuchdb does not exist",
            "FAILED: cannot connect to",
            "FAILED: the database at",
        )
    ), last
    assert advice in last
    assert WRONG not in output and PASSWORD not in output


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_gives_one_line_with_the_fix(guarded, invoke, fault, command):
    env, advice = environment(guarded, fault)
    if command == ["init"] and fault == "database missing":  # init would create it, if the role could
        advice = "may not create it; create it as an administrator (CREATE DATABASE nosuchdb OWNER outsider)"
    result = invoke(*command, env=env)
    assert_one_line(result.stderr, result.returncode, advice)


@pytest.mark.parametrize("fault", FAULTS)
def test_plain_alembic_gives_one_line_with_the_fix(guarded, fault):
    env, advice = environment(guarded, fault)
    run = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        env={**env, "PATH": "/usr/bin:/bin"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line(run.stdout + run.stderr, 1 if run.returncode else 0, advice)


@pytest.mark.parametrize("fault", ["wrong password", "SSL refused", "database missing"])
def test_startup_stops_at_a_permanent_error(guarded, fault, caplog):
    env, advice = environment(guarded, fault)
    database = Database(load_settings({**env, "DATABASE_CONNECT_TIMEOUT": "10"}))
    with pytest.raises(DatabaseUnavailableError, match=advice):
        database.startup()
    waits = [r for r in caplog.records if getattr(r, "event", None) == "database_wait"]
    assert waits == []  # not retried until DATABASE_CONNECT_TIMEOUT: one attempt, no sleep
    database.dispose()
