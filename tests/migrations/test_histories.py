"""Two public histories, copied unchanged: atsboost applies them as plain Alembic does, and lints them.

MLflow's 67 revisions (7 read the database or cannot be written as literal SQL, so
they cannot be rendered offline) and Prefect's 120 for PostgreSQL (18 such; one
written for asyncpg passes a literal % to exec_driver_sql, which psycopg refuses).
Each is applied by ``atsboost-db migrate`` in testing and in production with the
lint on ``error``, and by plain ``alembic upgrade`` with Alembic's generic env.py,
each on a database of its own: the schemas come out the same.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import URL

from tests import histories
from tests.conftest import Server, catalog, skip_without_extension

pytestmark = pytest.mark.slow

# MLflow's revisions that cannot be rendered offline, and Prefect's count of them
MLFLOW_UNRENDERED = {
    "90e64c465722",
    "89d4b8295536",
    "3500859a5d39",
    "0584bdc529eb",
    "1b5f0d9ad7c1",
    "75868b020152",
    "dc11669786a5",
}
PREFECT_UNRENDERED = 18
# Prefect's revision written for asyncpg, and the one before it, where every run stops
PREFECT_ASYNCPG_ONLY, PREFECT_LAST_APPLIED = "c8d5f2a71b3e", "9e9dadc36797"
ATSBOOST_HEAD = "atsboost@head"


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of an environment holding atsboost's wheel, mlflow-skinny and prefect."""
    return histories.environment_python(tmp_path_factory.mktemp("histories-venv"))


@pytest.fixture
def new_database(pg_server: Server) -> Iterator[Callable[[], URL]]:
    """Create empty databases on the test server; all are dropped afterwards."""
    names: list[str] = []
    admin = pg_server.url(pg_server.maintenance_dbname).set(drivername="postgresql")

    def create() -> URL:
        names.append(f"history_{uuid.uuid4().hex[:12]}")
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {names[-1]}")
        return pg_server.url(names[-1])

    yield create
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def with_pg_trgm(pg_server: Server) -> None:
    """Prefect's revision 77ebcc9cf355 creates the pg_trgm extension, which pgserver's build lacks."""
    skip_without_extension(pg_server, "pg_trgm", "Prefect's revision 77ebcc9cf355")


def schema(url: URL) -> list[str]:
    """The database's catalogue, less atsboost's own bookkeeping table."""
    engine = create_engine(url)
    try:
        return sorted(item for item in catalog(engine) if "atsboost_checksums" not in item)
    finally:
        engine.dispose()


def migrate(python: Path, project: Path, url: URL, *args: str, **env: str) -> histories.Result:
    environ = {"ATSBOOST_ENV": "testing", "DATABASE_URL": url.render_as_string(hide_password=False), **env}
    return histories.run(python, ["-m", "atsboost", "migrate", *args], environ, project)


def production(python: Path, project: Path, url: URL) -> histories.Result:
    return migrate(
        python,
        project,
        url,
        "--force",
        ATSBOOST_ENV="production",
        DATABASE_DISABLE_SSL="true",
        MIGRATION_LINT="error",
    )


def plain_upgrade(python: Path, ini: Path, *targets: str) -> None:
    for target in targets:
        histories.run(
            python, ["-m", "alembic", "-c", str(ini), "upgrade", target], {}, ini.parent, check=True
        )


def test_mlflow_applies_as_with_plain_alembic_in_testing_and_production(python, new_database, tmp_path):
    history = histories.MLFLOW
    project = histories.atsboost_project(python, history, tmp_path / "project")
    testing, prod, plain = new_database(), new_database(), new_database()
    for url in (testing, prod, plain):
        histories.prepare(python, history, url)
    ran = migrate(python, project, testing)
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    assert "applied 69 revision(s)" in ran.stdout
    refused_nothing = production(python, project, prod)
    assert refused_nothing.returncode == 0, refused_nothing.stderr
    for revision in MLFLOW_UNRENDERED:
        assert (
            f"lint: revision {revision}: AB016: its SQL cannot be rendered offline" in refused_nothing.stderr
        )
    plain_upgrade(python, histories.plain_project(python, history, tmp_path / "plain", plain), "heads")
    assert schema(testing) == schema(prod) == schema(plain)
    assert "relation r latest_metrics" in schema(plain)  # made by a revision that reads the database


@pytest.mark.usefixtures("with_pg_trgm")
def test_prefect_stops_where_plain_alembic_does_naming_the_revision_and_statement(
    python, new_database, tmp_path
):
    history = histories.PREFECT
    project = histories.atsboost_project(python, history, tmp_path / "project")
    testing, prod, plain = new_database(), new_database(), new_database()
    for ran in (migrate(python, project, testing), production(python, project, prod)):
        assert ran.returncode == 1, ran.stderr
        [error] = [line for line in ran.stderr.splitlines() if line.startswith("Error: ")]
        assert (
            f"revision {PREFECT_ASYNCPG_ONLY} (Rebuild an invalid event_resources(occurred) index)" in error
        )
        assert "Statement: SELECT format('%I.%I', n.nspname, c.relname)" in error
        assert "write %% for each literal %" in error
        assert "Traceback" not in ran.stderr
    plain_upgrade(
        python,
        histories.plain_project(python, history, tmp_path / "plain", plain),
        PREFECT_LAST_APPLIED,
        ATSBOOST_HEAD,
    )
    assert schema(testing) == schema(prod) == schema(plain)
    assert f"version {PREFECT_LAST_APPLIED}" in schema(plain)


@pytest.mark.usefixtures("with_pg_trgm")
def test_the_lint_reports_what_it_cannot_render_and_lints_the_rest(python, new_database, tmp_path):
    project = histories.atsboost_project(python, histories.PREFECT, tmp_path / "project")
    url = new_database()
    report = migrate(python, project, url, "lint", "--range", "base:heads", "--json")
    assert report.returncode == 2, report.stderr  # it found errors too: the exit code follows the findings
    assert "Traceback" not in report.stderr
    found = json.loads(report.stdout)
    assert len(found["revisions"]) == 122  # Prefect's 120 and atsboost's 2
    unrendered = [f for f in found["findings"] if f["rule"] == "AB016"]
    assert len(unrendered) == PREFECT_UNRENDERED
    assert all(f["severity"] == "warning" and "AB001" in f["unchecked"] for f in unrendered)
    assert {f["rule"] for f in found["findings"]} - {"AB016"}  # the other revisions were linted
    dry = migrate(python, project, url, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    named = [
        line
        for line in dry.stdout.splitlines()
        if line.startswith("-- revision ") and "cannot be rendered" in line
    ]
    assert len(named) == PREFECT_UNRENDERED
    assert "CREATE TABLE" in dry.stdout  # the SQL of the others is shown


def test_checksums_record_the_source_and_that_the_sql_was_not_rendered(python, new_database, tmp_path):
    history = histories.MLFLOW
    project = histories.atsboost_project(python, history, tmp_path / "project")
    url = new_database()
    histories.prepare(python, history, url)
    assert migrate(python, project, url).returncode == 0
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        rows = conn.execute(
            "SELECT revision, checksum IS NOT NULL, sql_checksum IS NOT NULL, sql_unrendered "
            "FROM atsboost_checksums"
        ).fetchall()
    unrendered = {revision for revision, source, sql, reason in rows if source and not sql and reason}
    assert unrendered == MLFLOW_UNRENDERED
    assert sum(1 for _, source, sql, _ in rows if source and sql) == len(rows) - len(MLFLOW_UNRENDERED)
    validated = migrate(python, project, url, "validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr


# `migrate lint --range base:heads` (CI's lint: no database), per rule and severity; docs/migrations.md
# publishes them with the false positives judged by hand.
HISTORY_FINDINGS = {
    "mlflow": {
        "AB001 error": 12,
        "AB003 error": 3,
        "AB005 warning": 5,
        "AB006 warning": 3,
        "AB007 error": 5,
        "AB008 error": 2,
        "AB009 error": 1,
        "AB016 warning": 7,
    },
    "prefect": {
        "AB001 error": 44,
        "AB003 error": 28,
        "AB006 error": 5,
        "AB007 error": 18,
        "AB008 error": 3,
        "AB009 error": 8,
        "AB010 error": 27,
        "AB011 error": 3,
        "AB014 warning": 3,
        "AB016 warning": 18,
        "AB017 error": 2,
    },
}


@pytest.mark.parametrize("history", [histories.MLFLOW, histories.PREFECT], ids=lambda h: h.name)
def test_a_history_s_findings_per_rule(python, history, tmp_path):
    project = histories.atsboost_project(python, history, tmp_path / "project")
    nowhere = {"ATSBOOST_ENV": "testing", "DATABASE_URL": "postgresql://lint@127.0.0.1:9/unused"}
    command = ["-m", "atsboost", "migrate", "lint", "--range", "base:heads", "--json"]
    linted = histories.run(python, command, nowhere, project)
    assert linted.returncode == 2 and "Traceback" not in linted.stderr, linted.stderr
    findings = json.loads(linted.stdout)["findings"]
    counts = Counter(f"{f['rule']} {f['severity']}" for f in findings)
    assert dict(counts) == HISTORY_FINDINGS[history.name]
    on_the_old_state = [f for f in findings if f["rule"] in ("AB005", "AB006")]
    guessed = [f for f in on_the_old_state if "not known" in f["detail"] and f["severity"] == "error"]
    assert guessed == []  # a verdict on a column nothing describes is a warning that says so
    for dropped in (f for f in findings if f["rule"] == "AB003"):  # the table, never the index's name
        index = dropped["detail"].removeprefix("index ").split(",")[0]
        assert dropped["table"] != index
        assert dropped["table"] or dropped["detail"].endswith("on a table not known here")
