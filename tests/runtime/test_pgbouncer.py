"""Transaction pooling, tested through a real PgBouncer in front of a server with max_connections=20."""

import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from atsboost import migrations
from atsboost.config.settings import load_settings
from atsboost.errors import MigrationError
from atsboost.runtime.aio.engine import create_async_engine
from atsboost.runtime.engine import create_engine
from tests.conftest import own_cluster, server_binaries

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None,
    reason="PgBouncer is not installed (Debian: apt-get install pgbouncer; .ci/run installs it)",
)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def stack():
    """A server with max_connections=20 and, in front of it, PgBouncer in transaction mode (and session)."""
    with own_cluster(server_binaries(), settings={"max_connections": "20"}) as server:
        socket_dir = server.url.query["host"]
        directory = Path(tempfile.mkdtemp(prefix="atsboost-pgbouncer-"))
        port = free_port()
        (directory / "users.txt").write_text('"postgres" ""\n')
        (directory / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"app = host={socket_dir} port=5432 dbname=postgres user=postgres\n"
            f"app_session = host={socket_dir} port=5432 dbname=postgres user=postgres pool_mode=session\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {directory / 'users.txt'}\n"
            "pool_mode = transaction\nmax_client_conn = 400\ndefault_pool_size = 10\n"
            f"logfile = {directory / 'pgbouncer.log'}\npidfile = {directory / 'pgbouncer.pid'}\n"
        )
        user = "postgres" if os.geteuid() == 0 else None  # PgBouncer refuses to run as root
        if user:
            for path in [directory, *directory.iterdir()]:
                shutil.chown(path, user)
        bouncer = subprocess.Popen([str(PGBOUNCER), str(directory / "pgbouncer.ini")], user=user)
        try:
            _wait_for_port(port)
            yield {
                "pooled": f"postgresql://postgres@127.0.0.1:{port}/app",
                "session": f"postgresql://postgres@127.0.0.1:{port}/app_session",
                "direct": server.url.set(drivername="postgresql").render_as_string(hide_password=False),
            }
        finally:
            bouncer.terminate()
            bouncer.wait(10)
            shutil.rmtree(directory, ignore_errors=True)


def _wait_for_port(port):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("PgBouncer did not start listening")


def workload(environ, *, clients=200, transactions=10):
    """``clients`` threads, each running the same short transaction repeatedly; returns the errors."""
    engine = create_engine(load_settings({**environ, "DATABASE_POOL_SIZE": str(clients)}))
    errors, done = [], []
    statement = text("SELECT count(*) FROM pg_class WHERE relname = :name")

    def client():
        for _ in range(transactions):
            try:
                with engine.connect() as conn:
                    conn.execute(statement, {"name": "pg_class"}).scalar_one()
                    conn.commit()
                done.append(1)
            except Exception as exc:  # each one is a failure the test counts
                errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    return errors, len(done)


def test_200_clients_through_pgbouncer_all_complete(stack):
    environ = {
        "ATSBOOST_ENV": "testing",
        "DATABASE_URL": stack["pooled"],
        "DATABASE_POOL_MODE": "transaction",
    }
    errors, done = workload(environ)
    assert [str(e).splitlines()[0] for e in errors] == []
    assert done == 2000


def test_200_async_tasks_through_pgbouncer_all_complete_with_the_timeout_in_each(stack):
    settings = load_settings(
        {
            "ATSBOOST_ENV": "testing",
            "DATABASE_URL": stack["pooled"],
            "DATABASE_POOL_MODE": "transaction",
            "DATABASE_POOL_SIZE": "200",
            "DATABASE_STATEMENT_TIMEOUT": "5000",
        }
    )
    statement = text("SELECT current_setting('statement_timeout') FROM pg_class WHERE relname = :name")

    async def client(engine):
        for _ in range(10):
            async with engine.connect() as conn:
                assert (await conn.execute(statement, {"name": "pg_class"})).scalar_one() == "5s"
                await conn.commit()

    async def main():
        engine = create_async_engine(settings)
        try:
            return await asyncio.gather(*(client(engine) for _ in range(200)), return_exceptions=True)
        finally:
            await engine.dispose()

    outcomes = asyncio.run(main())
    assert [str(e).splitlines()[0] for e in outcomes if e is not None] == []
    assert len(outcomes) == 200


def test_the_same_workload_with_prepared_statements_on_fails(stack):
    """Proof that the test is real: psycopg's automatic prepared statements break behind the pooler."""
    environ = {
        "ATSBOOST_ENV": "testing",
        "DATABASE_URL": stack["pooled"],
    }  # session mode: prepared statements on
    errors, done = workload(environ)
    assert errors, "expected failures with server-side prepared statements behind a transaction pooler"
    assert any("prepared statement" in str(e) for e in errors)
    assert done < 2000


def test_statement_timeout_is_set_per_transaction_and_does_not_leak(stack):
    environ = {
        "ATSBOOST_ENV": "testing",
        "DATABASE_URL": stack["pooled"],
        "DATABASE_POOL_MODE": "transaction",
        "DATABASE_STATEMENT_TIMEOUT": "200",
    }
    engine = create_engine(load_settings(environ))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "200ms"
            with pytest.raises(Exception, match="statement timeout"):
                conn.execute(text("SELECT pg_sleep(1)"))
    finally:
        engine.dispose()
    # Another client of the pooler, on the same server connections, sees the server's default.
    with psycopg.connect(stack["pooled"], prepare_threshold=None) as other:
        values = {other.execute("SHOW statement_timeout").fetchone()[0] for _ in range(20)}  # type: ignore[index]
    assert values == {"0"}


def test_migrations_through_the_pooler_are_refused_without_a_direct_url(stack):
    settings = load_settings(
        {"ATSBOOST_ENV": "testing", "DATABASE_URL": stack["pooled"], "DATABASE_POOL_MODE": "transaction"}
    )
    with pytest.raises(MigrationError, match="set DATABASE_MIGRATION_URL to a direct connection"):
        migrations.upgrade(settings)


def test_migrations_use_the_direct_url_while_the_app_uses_the_pooler(stack):
    settings = load_settings(
        {
            "ATSBOOST_ENV": "testing",
            "DATABASE_URL": stack["pooled"],
            "DATABASE_POOL_MODE": "transaction",
            "DATABASE_MIGRATION_URL": stack["direct"],
        }
    )
    try:
        result = migrations.upgrade(settings)
        assert [r.id for r in result.applied] == ["055d037ec299", "7c1f9a2b4d10"]
        engine = create_engine(settings)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM subscription_plans")).scalar_one() == 0
        finally:
            engine.dispose()
    finally:
        migrations.downgrade(settings, revision="base")


def test_behind_a_session_pooler_connections_go_without_the_server_bounds_it_refuses(stack, caplog, invoke):
    caplog.set_level(logging.WARNING, "atsboost.runtime.poolers")
    environ = {"ATSBOOST_ENV": "testing", "DATABASE_URL": stack["session"]}
    engine = create_engine(load_settings(environ))
    try:
        connections = [engine.connect() for _ in range(3)]
        values = [conn.execute(text("SHOW tcp_user_timeout")).scalar_one() for conn in connections]
        for conn in connections:
            conn.close()
    finally:
        engine.dispose()
    assert values == ["0"] * 3  # the server's default: atsboost's options did not reach it
    assert caplog.messages == [
        f"127.0.0.1:{stack['session'].split(':')[2].split('/')[0]} refuses the options startup parameter "
        "(a pooler, such as PgBouncer in session mode): connecting without it, so the server will not end "
        "by itself the sessions of clients lost behind a dead link; add options to the pooler's "
        "ignore_startup_parameters to keep them"
    ]  # once for the engine, not once per connection
    report = json.loads(invoke("health", "--json", env=environ).stdout)  # a command's own connection too
    assert report["connection"]["reachable"] is True


def test_a_statement_timeout_behind_a_session_pooler_is_refused_in_one_line(stack, invoke):
    environ = {"ATSBOOST_ENV": "testing", "DATABASE_URL": stack["session"]}
    environ["DATABASE_STATEMENT_TIMEOUT"] = "5000"  # asked for: not dropped
    result = invoke("migrate", "status", env=environ)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "refuses the options startup parameter" in line
    assert "set DATABASE_POOL_MODE=transaction behind a transaction pooler" in line
