"""What the statements do not say, the catalog does: a pending change is judged on the real column."""

import json

from tests.conftest import add_revision
from tests.migrations.lint.test_run import PRODUCTION, with_a_user

SAFE_ON_THIS_DATABASE = """
op.execute("ALTER TABLE users ALTER COLUMN email TYPE varchar(400)")
op.execute("ALTER TABLE users ALTER COLUMN role SET NOT NULL")
"""


def test_the_gate_reads_the_catalog_and_says_what_it_read(invoke, environ, alembic_project, database_url):
    env = {**environ, **PRODUCTION, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    with_a_user(invoke, env, database_url)  # users has a row: its locks matter
    add_revision(alembic_project, "wide01", SAFE_ON_THIS_DATABASE)
    pending = invoke("migrate", "lint", "--json", env=env)
    assert pending.returncode == 0, pending.stdout
    report = json.loads(pending.stdout)
    assert report["findings"] == []
    assert report["consulted"] == [
        "users.email: character varying(320) NOT NULL",
        "users.role: character varying(16) NOT NULL",
    ]
    static = invoke("migrate", "lint", "--range", "7c1f9a2b4d10:heads", env=env)  # no schema, no catalog
    assert (
        "wide01 AB005 warning users (email: to varchar(400) (the old type is not known here))"
        in static.stdout
    )
    applied = invoke("migrate", env=env)
    assert applied.returncode == 0, applied.stderr
    assert "lint: read from the catalog: users.email: character varying(320) NOT NULL" in applied.stderr
    assert "AB005" not in applied.stderr and "AB006" not in applied.stderr


def test_a_change_that_rewrites_is_still_refused_with_the_real_types(
    invoke, environ, alembic_project, database_url
):
    env = {**environ, **PRODUCTION, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    with_a_user(invoke, env, database_url)
    add_revision(
        alembic_project, "narrow01", 'op.execute("ALTER TABLE users ALTER COLUMN email TYPE varchar(100)")'
    )
    refused = invoke("migrate", env=env)
    assert refused.returncode == 4, refused.stderr
    assert "AB005 on users (email: varchar(320) to varchar(100))" in refused.stderr
