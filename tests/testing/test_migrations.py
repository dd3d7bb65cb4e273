"""The migration tests a project imports: they pass on good revisions and name the bad one."""

import pytest

from atsboost.testing import migrations as checks
from tests.conftest import add_revision
from tests.testing.test_databases import project  # noqa: F401 (a fixture)

Failed = pytest.fail.Exception


@pytest.fixture
def database(project):  # noqa: F811
    opened = project.open("run00001")
    yield opened
    opened.close()


def failure_of(check, project, expected):  # noqa: F811
    """Run one of the tests on the project's database; return how it failed (``expected``: the kind)."""
    database = project.open("run00001")
    try:
        with pytest.raises(expected) as failure:
            check(database)
    finally:
        database.close()
    return str(failure.value)


def test_the_four_pass_on_atsboost_s_own_revisions(project, database):  # noqa: F811
    checks.test_single_head(database)
    checks.test_upgrade_downgrade_each_revision(database)
    checks.test_models_match_migrations(database)
    checks.test_revisions_lint_clean(database)


def test_a_downgrade_that_drops_too_little_is_named(project):  # noqa: F811
    add_revision(project.ini, "cccc00000001", "op.execute('CREATE TABLE notes (id int)')", "pass")
    message = failure_of(checks.test_upgrade_downgrade_each_revision, project, Failed)
    assert message.startswith("revision cccc00000001 (")
    assert "its upgrade after its downgrade failed" in message
    assert 'relation "notes" already exists' in message


def test_two_heads_on_one_line_are_a_fork(project):  # noqa: F811
    add_revision(project.ini, "dddd00000001", "pass")
    versions = project.ini.parent / "alembic" / "versions"
    text = next(versions.glob("*dddd00000001*.py")).read_text()
    (versions / "2099_01_01_0001-dddd00000002_test.py").write_text(
        text.replace("dddd00000001", "dddd00000002")
    )
    message = failure_of(checks.test_single_head, project, AssertionError)
    assert "heads dddd00000001 and dddd00000002 share an ancestor" in message


def test_a_model_without_its_revision_is_a_difference(project):  # noqa: F811
    add_revision(
        project.ini, "eeee00000001", "op.add_column('users', sa.Column('nickname', sa.Text))", "pass"
    )
    message = failure_of(checks.test_models_match_migrations, project, AssertionError)
    assert "remove column: users.nickname" in message


def test_a_revision_production_would_refuse_fails_the_lint_test(project):  # noqa: F811
    add_revision(project.ini, "ffff00000001", "op.create_index('users_name', 'users', ['created_at'])")
    message = failure_of(checks.test_revisions_lint_clean, project, AssertionError)
    assert "revision ffff00000001: AB001 on users: CREATE INDEX without CONCURRENTLY" in message
