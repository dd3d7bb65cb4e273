"""SQLAlchemy's own dialect suite: the pipelined dialects pass and fail exactly what psycopg's do."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, skip_without_extension

pytestmark = pytest.mark.slow


def test_sqlalchemy_s_suite_sees_no_difference(pg_server):
    """The sync pair only, for CI's time: ``python scripts/sqla_suite.py`` runs the asyncio pair too."""
    skip_without_extension(pg_server, "citext", "SQLAlchemy's PostgreSQL test provisioning")
    server = pg_server.url("postgres").set(drivername="postgresql").render_as_string(hide_password=False)
    database = f"atsboost_sqla_suite_{os.getpid()}"  # two suites at once on one server do not meet
    script = [
        sys.executable,
        str(REPO / "scripts" / "sqla_suite.py"),
        "--server",
        server,
        "--database",
        database,
        "--only",
        "sync",
    ]
    done = subprocess.run(script, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "0 tests differ" in done.stdout
    assert "postgresql+atsboost_pipeline: 1493 tests" in done.stdout  # the suite ran, whole
