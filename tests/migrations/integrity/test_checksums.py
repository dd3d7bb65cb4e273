"""Checksums of applied revisions: an edit after applying is reported until it is repaired."""

from sqlalchemy import text

from tests.conftest import add_revision


def recorded(engine):
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT revision, checksum FROM atsboost_checksums")).all())


def test_editing_an_applied_revision_fails_validate_and_status_until_repaired(
    invoke, environ, alembic_project, make_engine
):
    add_revision(
        alembic_project, "sum01", 'op.execute("CREATE TABLE sums (id int)")', 'op.execute("DROP TABLE sums")'
    )
    env = {**environ, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    assert invoke("migrate", env=env).returncode == 0
    assert set(recorded(make_engine())) == {"055d037ec299", "7c1f9a2b4d10", "sum01"}
    assert invoke("migrate", "validate", env=env).returncode == 0

    [path] = (alembic_project.parent / "alembic" / "versions").glob("*sum01*")
    path.write_text(path.read_text().replace("CREATE TABLE sums (id int)", "CREATE TABLE sums (id bigint)"))
    status = invoke("migrate", "status", env=env)
    assert status.returncode == 5
    assert f"revision sum01 ({path}) was edited after it was applied" in status.stdout
    validate = invoke("migrate", "validate", env=env)
    assert validate.returncode == 1 and "revision sum01" in validate.stdout
    migrate = invoke("migrate", env=env)
    assert migrate.returncode == 0 and "revision sum01" in migrate.stderr  # warned, not refused

    repaired = invoke("migrate", "repair", env=env)
    assert repaired.returncode == 0 and "1 revision(s) brought into step" in repaired.stdout
    assert invoke("migrate", "validate", env=env).returncode == 0
    assert invoke("migrate", "status", env=env).returncode == 0


def test_a_database_migrated_before_checksums_is_back_filled_without_complaint(invoke, environ, make_engine):
    assert invoke("migrate", env=environ).returncode == 0
    engine = make_engine()
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE atsboost_checksums"))
    again = invoke("migrate", env=environ)
    assert again.returncode == 0 and "WARNING" not in again.stderr
    assert set(recorded(engine)) == {"055d037ec299", "7c1f9a2b4d10"}
    assert invoke("migrate", "validate", env=environ).returncode == 0


def test_a_downgrade_forgets_the_reverted_revision(invoke, environ, make_engine):
    assert invoke("migrate", env=environ).returncode == 0
    assert invoke("migrate", "downgrade", "-1", env=environ).returncode == 0
    assert set(recorded(make_engine())) == {"055d037ec299"}


def test_health_warns_about_an_edited_revision(invoke, environ, alembic_project):
    add_revision(alembic_project, "sum02", 'op.execute("SELECT 1")')
    env = {**environ, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    assert invoke("migrate", env=env).returncode == 0
    [path] = (alembic_project.parent / "alembic" / "versions").glob("*sum02*")
    path.write_text(path.read_text().replace("SELECT 1", "SELECT 2"))
    check = invoke("health", "--check", env=env)
    assert check.returncode == 1, check.stdout
    assert "revision checksums: revision sum02" in check.stdout


def test_a_revision_that_renders_other_sql_is_named_by_validate(invoke, environ, alembic_project, tmp_path):
    statement = tmp_path / "statement.sql"
    statement.write_text("CREATE TABLE sums (id int)")
    add_revision(
        alembic_project, "sum03", f"import pathlib\nop.execute(pathlib.Path({str(statement)!r}).read_text())"
    )
    env = {**environ, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    assert invoke("migrate", env=env).returncode == 0
    assert invoke("migrate", "validate", env=env).returncode == 0
    statement.write_text("CREATE TABLE sums (id bigint)")  # the revision's file is unchanged
    validate = invoke("migrate", "validate", env=env)
    assert validate.returncode == 1
    assert "revision sum03 now renders other SQL than when it was applied" in validate.stdout
    assert invoke("migrate", "repair", env=env).returncode == 0
    assert invoke("migrate", "validate", env=env).returncode == 0
