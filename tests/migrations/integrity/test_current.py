"""``status()`` at head reads the database and the files without Alembic; anything else goes to Alembic."""

import pytest
from alembic import command
from sqlalchemy import text

from atsboost.errors import DatabaseUnavailableError, MigrationError
from atsboost.migrations import alembic_config
from atsboost.migrations.commands import alembic_status
from atsboost.migrations.integrity.current import at_head, connect, status
from tests.conftest import add_revision, run_loading


def as_seen(state):
    """What `migrate status` prints of a status (the heads' order aside)."""
    return (sorted(state.current), sorted(state.heads), [r.id for r in state.pending], state.edited)


def test_at_head_the_quick_read_says_what_alembic_says(invoke, environ, make_settings):
    assert invoke("migrate", env=environ).returncode == 0
    settings = make_settings()

    quick = at_head(settings)

    assert quick is not None and quick.up_to_date
    assert as_seen(quick) == as_seen(alembic_status(settings))


def test_status_at_head_loads_neither_alembic_nor_sqlalchemy(invoke, environ, tmp_path):
    assert invoke("migrate", env=environ).returncode == 0
    output, code, loaded = run_loading(["migrate", "status"], environ, tmp_path)
    assert "pending  0" in output and code == 0
    assert loaded == []


def test_pending_revisions_are_read_by_alembic(invoke, environ, alembic_project, make_settings):
    env = {**environ, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    assert invoke("migrate", env=env).returncode == 0
    add_revision(alembic_project, "pend01", 'op.execute("SELECT 1")')
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))

    assert at_head(settings) is None
    assert [r.id for r in status(settings).pending] == ["pend01"]


def test_an_edited_revision_is_read_by_alembic(invoke, environ, alembic_project, make_settings):
    add_revision(alembic_project, "edit01", 'op.execute("SELECT 1")')
    env = {**environ, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    assert invoke("migrate", env=env).returncode == 0
    [path] = (alembic_project.parent / "alembic" / "versions").glob("*edit01*")
    path.write_text(path.read_text().replace("SELECT 1", "SELECT 2"))
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project))

    assert at_head(settings) is None
    assert status(settings).edited == (f"revision edit01 ({path}) was edited after it was applied",)


def test_a_stamp_below_head_is_noticed(invoke, environ, make_settings):
    assert invoke("migrate", env=environ).returncode == 0
    settings = make_settings()
    with_alembic = alembic_status(settings)

    command.stamp(alembic_config(settings), "055d037ec299", purge=True)  # leaves the checksums as they were

    assert at_head(settings) is None
    assert [r.id for r in status(settings).pending] == [with_alembic.heads[0]]


def test_checksums_recorded_before_the_graph_are_completed_by_the_next_migrate(
    invoke, environ, make_settings, make_engine
):
    assert invoke("migrate", env=environ).returncode == 0
    with make_engine().begin() as conn:
        conn.execute(text("UPDATE atsboost_checksums SET down_revisions = NULL"))
    settings = make_settings()
    assert at_head(settings) is None
    assert status(settings).up_to_date

    assert invoke("migrate", env=environ).returncode == 0
    assert at_head(settings) is not None


def test_a_server_that_refuses_is_explained(make_settings, unused_tcp_port):
    settings = make_settings(DATABASE_URL=f"postgresql://app:s3cret@127.0.0.1:{unused_tcp_port}/x")
    with pytest.raises(DatabaseUnavailableError) as refused:
        status(settings)
    message = str(refused.value)
    assert message.startswith(f"cannot connect to postgresql+psycopg://app:***@127.0.0.1:{unused_tcp_port}/x")
    assert "s3cret" not in message


def test_through_a_transaction_pooler_status_says_what_to_set(make_settings):
    settings = make_settings(DATABASE_POOL_MODE="transaction")

    assert connect(settings) is None
    with pytest.raises(MigrationError, match="set DATABASE_MIGRATION_URL"):
        status(settings)


def test_a_project_whose_first_revision_depends_on_atsboost_s_head_is_read_quickly(
    invoke, environ, tmp_path, make_settings
):
    project = tmp_path / "team"
    project.mkdir()
    assert invoke("migrate", "init", str(project)).returncode == 0
    env = {**environ, "ATSBOOST_ALEMBIC_INI": str(project / "alembic.ini")}
    assert invoke("migrate", "create", "notes", env=env).returncode == 0
    [first] = (project / "migrations" / "versions").glob("*_notes.py")
    assert "depends_on: str | Sequence[str] | None = '7c1f9a2b4d10'" in first.read_text()
    assert invoke("migrate", env=env).returncode == 0
    settings = make_settings(ATSBOOST_ALEMBIC_INI=str(project / "alembic.ini"))

    quick = at_head(settings)  # alembic_version holds the project's head alone: atsboost's is followed

    assert quick is not None and quick.up_to_date
    assert as_seen(quick) == as_seen(alembic_status(settings))
