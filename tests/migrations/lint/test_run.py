"""The lint's run: exemptions, waivers, exit codes, and the gate on what is pending (rules: test_corpus)."""

import json
import os
import subprocess
import sys

from sqlalchemy import create_engine, text

from atsboost import migrations
from atsboost.migrations.lint import lint
from tests.conftest import add_revision


def lint_one(make_settings, alembic_project, body):
    add_revision(alembic_project, "lint01", body)
    return lint(make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project)), revisions=["lint01"])


def test_a_table_created_in_the_same_revision_is_exempt(make_settings, alembic_project):
    body = 'op.execute("CREATE TABLE notes (id int)")\nop.execute("CREATE INDEX ix_notes ON notes (id)")'
    assert lint_one(make_settings, alembic_project, body).findings == []


def test_a_waiver_is_shown_with_its_reason(make_settings, alembic_project):
    waiver = "# atsboost: allow AB001 -- users is empty until launch\n"
    body = waiver + 'op.execute("CREATE INDEX ix_t ON users (email)")'
    report = lint_one(make_settings, alembic_project, body)
    assert [(f.rule, f.waived) for f in report.findings] == [("AB001", "users is empty until launch")]
    assert report.verdict == "clean"


def test_atsboost_s_own_revisions_are_clean(make_settings):
    assert lint(make_settings()).verdict == "clean"


def test_the_command_exits_by_severity(invoke, environ, alembic_project, make_settings, database_url):
    add_revision(alembic_project, "lint01", f"op.execute({DYNAMIC_DDL!r})")
    add_revision(alembic_project, "lint02", 'op.execute("CREATE INDEX ix_t ON users (email)")')
    env = {**environ, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    warned = invoke("migrate", "lint", "--range", "7c1f9a2b4d10:lint01", env=env)
    assert warned.returncode == 1, warned.stdout
    assert "lint01 AB020 warning: dynamic SQL (EXECUTE in a DO block" in warned.stdout
    pending = json.loads(invoke("migrate", "lint", "--json", env=env).stdout)  # all four: users is new
    assert pending["verdict"] == "warnings" and [f["rule"] for f in pending["findings"]] == ["AB020"]
    migrations.upgrade(make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project)), revision="7c1f9a2b4d10")
    a_user(database_url)  # users is in use now: its locks matter
    failed = invoke("migrate", "lint", "--json", env=env)  # lint01 and lint02, on users as it is
    assert failed.returncode == 2
    data = json.loads(failed.stdout)
    assert data["verdict"] == "errors"
    assert [f["rule"] for f in data["findings"]] == ["AB020", "AB001"]


DYNAMIC_DDL = "DO $$ BEGIN EXECUTE 'ALTER TABLE users ADD COLUMN n int'; END $$"
PRODUCTION = {"ATSBOOST_ENV": "production", "DATABASE_DISABLE_SSL": "true"}


def with_a_user(invoke, env, database_url):
    """Migrate to atsboost's head and put a row in users: a live table, whose locks matter."""
    assert invoke("migrate", env=env).returncode == 0
    a_user(database_url)


def a_user(database_url):
    """Put a row in users."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (email, password_hash) VALUES ('a@example.com', 'x')"))
    finally:
        engine.dispose()


def test_production_refuses_an_unwaived_error_and_applies_it_once_waived(
    invoke, environ, alembic_project, database_url
):
    env = {**environ, **PRODUCTION, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    with_a_user(invoke, env, database_url)
    add_revision(alembic_project, "lint01", 'op.execute("CREATE INDEX ix_t ON users (email)")')
    refused = invoke("migrate", env=env)
    assert refused.returncode == 4, refused.stderr
    expected = (
        "refusing to migrate: the lint found 1 error(s) in the pending revisions: revision lint01: AB001"
    )
    assert expected in refused.stderr
    status = invoke("migrate", "status", env=env).stdout
    assert "pending  1\n  lint01" in status  # nothing was changed
    [path] = (alembic_project.parent / "alembic" / "versions").glob("*lint01*")
    path.write_text(
        path.read_text().replace("def upgrade():", "# atsboost: allow AB001 -- empty table\ndef upgrade():")
    )
    applied = invoke("migrate", env=env)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip().endswith("now at lint01")


def test_elsewhere_the_lint_warns_and_the_dry_run_shows_it(invoke, environ, alembic_project, database_url):
    env = {**environ, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    with_a_user(invoke, env, database_url)
    add_revision(alembic_project, "lint01", 'op.execute("CREATE INDEX ix_t ON users (email)")')
    dry = invoke("migrate", "--dry-run", env=env)
    assert "-- lint: revision lint01: AB001 on users: CREATE INDEX without CONCURRENTLY" in dry.stdout
    applied = invoke("migrate", env=env)
    assert applied.returncode == 0
    assert "WARNING atsboost.migrations: lint: revision lint01: AB001 on users" in applied.stderr


def test_a_run_exempts_tables_that_are_new_or_empty_when_it_starts(invoke, environ, alembic_project):
    """From an empty database every table is created by the run; an existing empty one holds no one up."""
    env = {**environ, **PRODUCTION, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    add_revision(alembic_project, "lint01", 'op.execute("CREATE INDEX ix_t ON users (email)")')
    first = invoke("migrate", env=env)  # users is created two revisions earlier in the same run
    assert first.returncode == 0, first.stderr
    retype = 'op.execute("ALTER TABLE users ALTER COLUMN last_login_at TYPE timestamp")'
    add_revision(alembic_project, "lint02", retype)
    second = invoke("migrate", env=env)  # users exists, with no row
    assert second.returncode == 0, second.stderr
    assert "AB005" not in second.stderr
    static = invoke("migrate", "lint", "--range", "base:heads", env=env)  # CI's lint sees no data
    assert "lint02 AB005 error users (last_login_at: timestamptz to timestamp)" in static.stdout


READS_THE_DATABASE = """
count = op.get_bind().exec_driver_sql("SELECT count(*) FROM users").scalar()
op.execute(f"COMMENT ON TABLE users IS 'had {count} rows'")
"""


def test_a_revision_that_reads_the_database_is_a_finding_and_applies_as_written(
    invoke, environ, alembic_project
):
    add_revision(alembic_project, "reads01", READS_THE_DATABASE)
    add_revision(alembic_project, "lint02", 'op.execute("CREATE INDEX ix_t ON users (email)")')
    env = {**environ, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    linted = invoke("migrate", "lint", "--range", "base:heads", "--json", env=env)
    assert linted.returncode == 2  # lint02's error still counts
    findings = json.loads(linted.stdout)["findings"]
    [unrendered] = [f for f in findings if f["revision"] == "reads01"]
    assert unrendered["rule"] == "AB016" and unrendered["severity"] == "warning"
    assert "AttributeError" in unrendered["problem"] and "reads01_test.py" in unrendered["problem"]
    assert "AB001" in unrendered["unchecked"]
    assert any(f["revision"] == "lint02" and f["rule"] == "AB001" for f in findings)
    dry = invoke("migrate", "--dry-run", env=env)
    assert "-- revision reads01 cannot be rendered as offline SQL (AttributeError" in dry.stdout
    assert "CREATE INDEX ix_t ON users (email)" in dry.stdout  # the revision after it is shown
    traced = invoke("migrate", "lint", "--trace", env=env)
    assert "(its tables): not traced (its SQL cannot be rendered offline: AttributeError" in traced.stdout
    offline = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(alembic_project), "upgrade", "heads", "--sql"],
        cwd=alembic_project.parent,
        env={k: v for k, v in os.environ.items() if not k.startswith(("ATSBOOST_", "DATABASE_"))},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert offline.returncode == 0, offline.stderr  # no database, and no traceback
    assert "-- revision reads01 cannot be rendered as offline SQL" in offline.stdout
    assert "CREATE INDEX ix_t ON users (email)" in offline.stdout
    applied = invoke("migrate", env=env)
    assert applied.returncode == 0, applied.stderr
    assert "lint: revision reads01: AB016" in applied.stderr
    assert invoke("migrate", "validate", env=env).returncode == 0
