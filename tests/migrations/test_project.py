"""An application's own Alembic project: `migrate init`, atsboost's schema as a branch, routing, merge."""

import os
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import text

from atsboost import migrations
from atsboost.config.settings import load_settings
from atsboost.errors import MigrationError
from atsboost.migrations.project import TEMPLATE
from tests.conftest import REPO
from tests.roles import superuser_warning_only

ATSBOOST_HEAD = "7c1f9a2b4d10"
MODELS = """
from sqlalchemy import MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from atsboost.app.models import Timestamps


class AppBase(DeclarativeBase):
    metadata = MetaData()


class Note(Timestamps, AppBase):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(200))
"""


def add_models(project, module, source, base):
    """Write ``module``.py holding ``source``, and point the project's env.py at ``base``'s MetaData."""
    (project / f"{module}.py").write_text(source)
    env_py = project / "migrations" / "env.py"
    wired = f"from {module} import {base}\n\ntarget_metadata = {base}.metadata"
    template = env_py.read_text()
    assert "target_metadata = None" in template  # the line migrate init writes for you to change
    env_py.write_text(template.replace("target_metadata = None", wired))


@pytest.fixture
def app(tmp_path, monkeypatch, invoke):
    """A scaffolded application project with one model, as the working directory."""
    folder = tmp_path / "app"
    folder.mkdir()
    monkeypatch.chdir(folder)
    assert invoke("migrate", "init", str(folder)).returncode == 0
    add_models(folder, "notes_models", MODELS, "AppBase")
    # Alembic puts the project on sys.path and env.py imports the models: undo both afterwards.
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield folder
    sys.modules.pop("notes_models", None)


def revision_files(folder):
    return sorted((folder / "migrations" / "versions").glob("*.py"))


def test_migrate_init_writes_a_project_and_never_overwrites(invoke, tmp_path):
    created = invoke("migrate", "init", "proj")
    assert created.returncode == 0, created.stderr
    project = tmp_path / "proj"
    assert (project / "migrations" / "env.py").read_text() == (TEMPLATE / "env.py").read_text()
    ini = (project / "alembic.ini").read_text()
    assert "atsboost.migrations:versions" in ini and "revision_environment = true" in ini
    assert (project / "migrations" / "versions").is_dir()
    again = invoke("migrate", "init", "proj")
    assert again.returncode == 1
    assert f"Error: {project / 'alembic.ini'} already exists, so nothing was written" in again.stderr
    assert (project / "alembic.ini").read_text() == ini


def test_the_repository_env_py_is_the_template():
    assert (REPO / "alembic" / "env.py").read_text() == (TEMPLATE / "env.py").read_text()
    assert (REPO / "alembic" / "script.py.mako").read_text() == (TEMPLATE / "script.py.mako").read_text()


def test_an_app_project_migrates_seeds_and_autogenerates_its_own_branch(app, invoke, environ, make_engine):
    first = invoke("init", env=environ)
    assert first.returncode == 0, first.stderr
    assert f"revision  {ATSBOOST_HEAD} (applied 2 revision(s) now)" in first.stdout

    created = invoke("migrate", "create", "add_notes", "--autogenerate", env=environ)
    assert created.returncode == 0, created.stderr
    [path] = revision_files(app)
    assert created.stdout.strip().endswith(f"created {path}")
    source = path.read_text()
    assert "op.create_table('notes'" in source
    assert "drop_table" not in source.split("def downgrade")[0]  # atsboost's tables are left alone
    assert "down_revision: str | Sequence[str] | None = None" in source
    assert f"depends_on: str | Sequence[str] | None = '{ATSBOOST_HEAD}'" in source
    assert "CREATE TRIGGER notes_set_updated_at BEFORE UPDATE ON notes" in source

    applied = invoke("migrate", env=environ)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.startswith("applied 1 revision(s)")
    engine = make_engine()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO notes (body, updated_at) VALUES ('a', now() - interval '1 day')"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE notes SET body = 'b'"))
        assert conn.execute(text("SELECT updated_at > now() - interval '1 minute' FROM notes")).scalar()

    nothing = invoke("migrate", "create", "again", "--autogenerate", env=environ)
    assert nothing.returncode == 1
    assert "the models match the database" in nothing.stderr


def test_commands_from_a_subfolder_use_the_same_project(app, invoke, environ, monkeypatch):
    assert invoke("init", env=environ).returncode == 0
    assert invoke("migrate", "create", "add_notes", "--autogenerate", env=environ).returncode == 0
    sub = app / "src" / "deeper"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert invoke("migrate", "status", env=environ).returncode == 3  # the app's revision is pending
    assert invoke("migrate", env=environ).returncode == 0
    status = invoke("migrate", "status", env=environ)
    assert status.returncode == 0, status.stdout
    seeded = invoke("seed", env=environ)
    assert seeded.returncode == 0 and "(already present)" in seeded.stdout
    health = invoke("health", "--check", env=environ)
    assert health.returncode == 1 and superuser_warning_only(health.stdout), health.stdout  # at head


def test_parallel_heads_are_named_with_the_merge_command(app, invoke, environ):
    assert invoke("migrate", "create", "first", env=environ).returncode == 0
    # A teammate's revision, written on another branch from the same starting point.
    (app / "migrations" / "versions" / "2099_01_01_0000-aaaa00000002_other.py").write_text(
        textwrap.dedent(
            f"""
            revision = "aaaa00000002"
            down_revision = None
            branch_labels = None
            depends_on = "{ATSBOOST_HEAD}"


            def upgrade():
                pass


            def downgrade():
                pass
            """
        )
    )
    blocked = invoke("migrate", "create", "third", env=environ)
    assert blocked.returncode == 1
    assert "your revisions have 2 heads" in blocked.stderr
    assert "join them with `atsboost-db migrate merge`" in blocked.stderr
    merged = invoke("migrate", "merge", env=environ)
    assert merged.returncode == 0, merged.stderr
    assert invoke("migrate", "create", "third", env=environ).returncode == 0
    assert len(revision_files(app)) == 4
    assert invoke("migrate", env=environ).stdout.startswith("applied 6 revision(s)")


def test_upgrade_head_with_atsboost_s_branch_names_heads(app, invoke, environ):
    assert invoke("migrate", "create", "first", env=environ).returncode == 0
    with pytest.raises(MigrationError) as info:
        migrations.upgrade(load_settings(environ), revision="head")
    assert "'head' needs one head, but the revisions have several" in str(info.value)
    assert "`alembic upgrade heads`" in str(info.value)


def test_creating_a_revision_needs_a_project(invoke, environ):
    result = invoke("migrate", "create", "add_x", env=environ)
    assert result.returncode == 1
    assert "there is no Alembic project here" in result.stderr
    assert "`atsboost-db migrate init`" in result.stderr


def test_migrate_check_finds_a_model_without_a_revision(app, invoke, environ):
    assert invoke("migrate", env=environ).returncode == 0
    drift = invoke("migrate", "check", env=environ)
    assert drift.returncode == 1
    assert "the models differ from the migrations in 2 place(s); write a revision:" in drift.stdout
    assert "  add table: notes\n" in drift.stdout
    assert "  execute: CREATE TRIGGER notes_set_updated_at BEFORE UPDATE ON notes" in drift.stdout
    assert invoke("migrate", "create", "add_notes", "--autogenerate", env=environ).returncode == 0
    assert invoke("migrate", env=environ).returncode == 0
    clean = invoke("migrate", "check", env=environ)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.strip() == "the models match the migrations"


def test_migrate_check_wants_a_database_at_head(invoke, environ):
    result = invoke("migrate", "check", env=environ)
    assert result.returncode == 1
    assert "has revisions pending: run `atsboost-db migrate` first" in result.stderr


def plain_alembic(folder, *args):
    """Run the alembic command line in the project, with no database and no DATABASE_URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATSBOOST_", "DATABASE_", "NODE_ENV"))}
    command = [sys.executable, "-m", "alembic", *args]
    return subprocess.run(
        command,
        cwd=folder,
        env={**env, "ATSBOOST_ENV": "production"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_alembic_s_offline_commands_need_no_database(app):
    for args, shown in [
        (["history"], "<base> -> 055d037ec299 (atsboost), initial schema"),
        (["history", "-r", "base:055d037ec299"], "initial schema"),
        (["heads"], "(atsboost) (head)"),
        (["branches"], ""),
        (["show", "055d037ec299"], "Revision ID: 055d037ec299"),
        (["revision", "-m", "add_notes"], "add_notes.py"),
    ]:
        ran = plain_alembic(app, *args)
        assert ran.returncode == 0, (args, ran.stderr)
        assert shown in ran.stdout, (args, ran.stdout)
    [written] = revision_files(app)
    assert f"depends_on: str | Sequence[str] | None = '{ATSBOOST_HEAD}'" in written.read_text()  # routed
    needs_one = plain_alembic(app, "history", "--indicate-current")
    assert needs_one.returncode != 0  # alembic exits 255 on a FAILED: line
    assert "DATABASE_URL is not set; it is required in production" in needs_one.stderr


def test_an_x_argument_nothing_reads_is_refused_before_connecting(app):
    for args, expected in [
        (["-x", "unknownopt=1", "current"], "alembic -x unknownopt=1: atsboost's env.py reads only"),
        (["-x", "lock_timeout=abc", "upgrade", "heads"], "timeouts come from MIGRATION_LOCK_TIMEOUT"),
        (["-x", "dry_run=maybe", "upgrade", "heads"], "-x dry_run='maybe' is not a boolean"),
    ]:
        ran = plain_alembic(app, *args)
        assert ran.returncode != 0
        assert expected in ran.stderr, ran.stderr
        assert "Traceback" not in ran.stderr


def test_a_new_revision_needs_no_database(app, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATSBOOST_", "DATABASE_", "NODE_ENV"))}
    env["ATSBOOST_EMBEDDED_DIR"] = str(tmp_path / "embedded")  # development: the embedded server, if asked
    command = [sys.executable, "-m", "atsboost", "migrate", "create", "add_notes"]
    ran = subprocess.run(command, cwd=app, env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    [written] = revision_files(app)
    assert ran.stdout.strip().endswith(f"created {written}")
    assert not (tmp_path / "embedded").exists()  # no server was started for it


TEAM_MODELS = """
from sqlalchemy import MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class TeamBase(DeclarativeBase):
    metadata = MetaData()


class User(TeamBase):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    handle: Mapped[str] = mapped_column(String(40))
"""


@pytest.fixture
def team(tmp_path, monkeypatch, invoke):
    """A project written with --no-app-schema whose own models have a ``users`` table."""
    folder = tmp_path / "team"
    folder.mkdir()
    monkeypatch.chdir(folder)
    written = invoke("migrate", "init", "--no-app-schema")
    assert written.returncode == 0, written.stderr
    assert "`atsboost-db migrate` applies nothing yet" in written.stdout
    add_models(folder, "team_models", TEAM_MODELS, "TeamBase")
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield folder
    sys.modules.pop("team_models", None)


def test_a_team_with_its_own_users_table_adopts_the_layer_without_atsboost_s_schema(
    team, invoke, environ, make_engine
):
    assert "atsboost.migrations:versions" not in (team / "alembic.ini").read_text()
    created = invoke("migrate", "create", "users", "--autogenerate", env=environ)
    assert created.returncode == 0, created.stderr
    [path] = revision_files(team)
    source = path.read_text()
    assert "op.create_table('users'" in source and "sa.Column('handle'" in source
    assert "subscription" not in source and "TRIGGER" not in source
    assert "depends_on: str | Sequence[str] | None = None" in source

    applied = invoke("migrate", env=environ)
    assert applied.returncode == 0, applied.stderr
    engine = make_engine()
    with engine.connect() as conn:
        tables = set(
            conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars()
        )
        columns = set(
            conn.execute(
                text("SELECT column_name FROM information_schema.columns WHERE table_name = 'users'")
            ).scalars()
        )
    # The layer's bookkeeping beside Alembic's, and the team's table: none of the application's.
    assert tables == {"alembic_version", "atsboost_checksums", "users"} and columns == {"id", "handle"}
    assert invoke("migrate", "check", env=environ).returncode == 0
    nothing = invoke("migrate", "create", "again", "--autogenerate", env=environ)
    assert nothing.returncode == 1 and "the models match the database" in nothing.stderr
    seeded = invoke("seed", env=environ)
    assert seeded.returncode == 1
    assert (
        "does not include the atsboost schema; add the line 'atsboost.migrations:versions'" in seeded.stderr
    )
