"""The package as a team installs it: a wheel in a fresh virtualenv, used from an app folder of its own.

Nothing here runs from the checkout: the wheel must carry the migration
environment, its template and atsboost's revisions.
"""

import json
import subprocess
import textwrap

import pytest
from sqlalchemy import text

from tests.conftest import REPO
from tests.migrations.test_project import TEAM_MODELS, add_models
from tests.roles import superuser_warning_only
from tests.wheel import install_wheel, shell

pytestmark = [pytest.mark.slow, pytest.mark.wheel]

MODELS = """
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from atsboost.app.models import Base, Timestamps


class Resume(Timestamps, Base):
    __tablename__ = "resumes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
"""


@pytest.fixture(scope="session")  # once per worker, though other modules' tests come between
def installed(tmp_path_factory):
    """A fresh virtualenv, outside the checkout, with atsboost installed from a freshly built wheel."""
    return install_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def folder(tmp_path):
    """A new application's folder, outside the checkout."""
    path = tmp_path / "myapp"
    path.mkdir()
    return path


@pytest.fixture
def app_shell(installed, folder, environ):
    """Run a command of the installed package in the app folder (or a folder under it)."""
    return shell(installed, folder, environ)


def test_a_new_app_reaches_a_migrated_seeded_database_from_the_wheel(app_shell):
    where = app_shell("python", "-c", "import atsboost; print(atsboost.__file__)")
    assert "site-packages" in where.stdout and str(REPO) not in where.stdout

    assert app_shell("atsboost-db", "migrate", "init").returncode == 0
    init = app_shell("atsboost-db", "init")
    assert init.returncode == 0, init.stderr
    assert "revision  7c1f9a2b4d10 (applied 2 revision(s) now)" in init.stdout
    assert init.stdout.rstrip().endswith("initialised the database")


def test_a_folder_without_a_project_uses_the_packaged_migrations(app_shell, folder):
    assert not (folder / "alembic.ini").exists()
    pending = app_shell("atsboost-db", "migrate", "status")
    assert pending.returncode == 3, pending.stderr
    assert "pending  2" in pending.stdout
    init = app_shell("atsboost-db", "init")
    assert init.returncode == 0, init.stderr
    assert "revision  7c1f9a2b4d10 (applied 2 revision(s) now)" in init.stdout
    health = app_shell("atsboost-db", "health", "--check")
    assert health.returncode == 1 and superuser_warning_only(health.stdout), health.stdout  # at head
    startup = "from atsboost import db; db.startup(); print(db.health_state()['status']); db.shutdown()"
    started = app_shell("python", "-c", startup)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "healthy"
    created = app_shell("atsboost-db", "migrate", "create", "add_x")
    assert created.returncode == 1
    assert "create one with `atsboost-db migrate init`" in created.stderr


def test_an_app_model_autogenerates_migrates_and_runs_from_subfolders(app_shell, folder, make_engine):
    assert app_shell("atsboost-db", "migrate", "init").returncode == 0
    add_models(folder, "app_models", MODELS, "Base")
    assert app_shell("atsboost-db", "init").returncode == 0
    created = app_shell("atsboost-db", "migrate", "create", "add_resumes", "--autogenerate")
    assert created.returncode == 0, created.stderr
    [revision] = (folder / "migrations" / "versions").glob("*_add_resumes.py")
    upgrade = revision.read_text().split("def downgrade")[0]
    assert "op.create_table('resumes'" in upgrade and "drop_table" not in upgrade
    assert "CREATE TRIGGER resumes_set_updated_at" in upgrade

    sub = folder / "app" / "handlers"
    sub.mkdir(parents=True)
    for cwd in (folder, sub):
        assert app_shell("atsboost-db", "migrate", cwd=cwd).returncode == 0
        status = app_shell("atsboost-db", "migrate", "status", cwd=cwd)
        assert status.returncode == 0, status.stdout + status.stderr
        seeded = app_shell("atsboost-db", "seed", cwd=cwd)
        assert seeded.returncode == 0 and "admin     admin@example.com (already present)" in seeded.stdout
        health = app_shell("atsboost-db", "health", "--check", cwd=cwd)
        assert health.returncode == 1 and superuser_warning_only(health.stdout), health.stdout + health.stderr
    with make_engine().begin() as conn:
        user = conn.execute(text("SELECT id FROM users LIMIT 1")).scalar_one()
        conn.execute(text("INSERT INTO resumes (user_id, title) VALUES (:u, 'cv')"), {"u": user})

    startup = "from atsboost import db; db.startup(); print(db.health_state()['status']); db.shutdown()"
    started = app_shell("python", "-c", startup, cwd=sub)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "healthy"


def test_a_team_with_its_own_users_table_adopts_the_wheel_without_atsboost_s_schema(
    app_shell, folder, make_engine
):
    assert app_shell("atsboost-db", "migrate", "init", "--no-app-schema").returncode == 0
    add_models(folder, "team_models", TEAM_MODELS, "TeamBase")
    created = app_shell("atsboost-db", "migrate", "create", "users", "--autogenerate")
    assert created.returncode == 0, created.stderr
    [revision] = (folder / "migrations" / "versions").glob("*_users.py")
    assert "op.create_table('users'" in revision.read_text()
    startup = "from atsboost import db; db.startup(); print(db.health_state()['status']); db.shutdown()"
    started = app_shell("python", "-c", startup)  # startup() applies the team's revision
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "healthy"
    assert app_shell("atsboost-db", "migrate", "check").returncode == 0
    assert app_shell("alembic", "upgrade", "heads").returncode == 0
    with make_engine().begin() as conn:
        conn.execute(text("INSERT INTO users (handle) VALUES ('ada')"))
        tables = set(
            conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars()
        )
    assert tables == {"alembic_version", "atsboost_checksums", "users"}


def test_plain_alembic_in_the_app_project_has_the_force_gate(app_shell, folder, make_engine):
    assert app_shell("atsboost-db", "migrate", "init").returncode == 0
    assert app_shell("atsboost-db", "migrate").returncode == 0
    assert app_shell("atsboost-db", "migrate", "create", "add_flags").returncode == 0
    [revision] = (folder / "migrations" / "versions").glob("*_add_flags.py")
    revision.write_text(
        revision.read_text().replace(
            "    pass", '    op.create_table("flags", sa.Column("id", sa.Integer, primary_key=True))', 1
        )
    )
    gated = {"ATSBOOST_ENV": "production", "DATABASE_DISABLE_SSL": "true", "MIGRATION_REQUIRE_FORCE": "true"}
    refused = app_shell("alembic", "upgrade", "heads", **gated)
    assert refused.returncode != 0
    assert "FAILED: refusing to apply 1 revision(s) in production" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    one_head = app_shell("alembic", "upgrade", "head", **gated)
    assert "`alembic upgrade heads`" in one_head.stdout + one_head.stderr
    forced = app_shell("alembic", "-x", "force=true", "upgrade", "heads", **gated)
    assert forced.returncode == 0, forced.stderr
    with make_engine().connect() as conn:
        assert conn.execute(text("SELECT to_regclass('flags') IS NOT NULL")).scalar_one()


def test_the_wheel_carries_the_migration_environment(installed):
    listing = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            textwrap.dedent(
                """
            from importlib import resources
            base = resources.files("atsboost.migrations")
            for name in ("template/env.py", "template/script.py.mako", "template/alembic.ini"):
                assert (base / name).is_file(), name
            print(sorted(p.name for p in (base / "versions").iterdir() if p.name.endswith(".py")))
            """
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    assert "055d037ec299_initial_schema.py" in listing.stdout


ASYNC_APP = """
import asyncio
from atsboost import aio


async def main():
    await aio.startup()
    print((await aio.health_state())["status"])
    await aio.shutdown()


asyncio.run(main())
"""


TRACED_APP = """
from sqlalchemy import text
from atsboost import db
from atsboost.metrics import otel

otel.instrument()
print(db.run_transaction(lambda session: session.execute(text("SELECT 1")).scalar_one()))
"""


def test_the_extras_are_named_when_missing_and_then_run_from_the_wheel(installed, app_shell):
    missing = app_shell("python", "-c", "import atsboost.aio")
    assert missing.returncode == 1
    assert "install it with: pip install 'atsboost[asyncio]'" in missing.stderr
    unexported = app_shell("atsboost-db", "health", "--format", "prometheus")
    assert unexported.returncode == 1 and "Traceback" not in unexported.stderr
    assert "install it with: pip install 'atsboost[prometheus]'" in unexported.stderr
    untraced = app_shell("python", "-c", "import atsboost.metrics.otel")
    assert "install it with: pip install 'atsboost[otel]'" in untraced.stderr
    [wheel] = (installed.parent.parent / "dist").glob("atsboost-*.whl")
    extra = [str(installed / "python"), "-m", "pip", "install", "-q", f"{wheel}[asyncio,prometheus,otel]"]
    subprocess.run(extra, check=True, capture_output=True, timeout=600)
    started = app_shell("python", "-c", ASYNC_APP)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "healthy"
    exported = app_shell("atsboost-db", "health", "--format", "prometheus")
    assert exported.returncode == 0 and "pg_up 1.0" in exported.stdout, exported.stderr
    traced = app_shell("python", "-c", TRACED_APP)  # the API alone: OpenTelemetry's no-op providers
    assert traced.returncode == 0 and traced.stdout.strip() == "1", traced.stderr


def test_json_logs_from_the_wheel(app_shell):
    migrated = app_shell("atsboost-db", "--log-format", "json", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    lines = [json.loads(line) for line in migrated.stderr.splitlines() if line.strip()]
    assert [line["revision"] for line in lines if line.get("event") == "migration_applied"] == [
        "055d037ec299",
        "7c1f9a2b4d10",
    ]


READ_ON_A_REPLICA = """
from sqlalchemy import text
from atsboost import db

recovery = text("SELECT pg_is_in_recovery()")
print(db.run_transaction(lambda s: s.execute(recovery).scalar_one(), read_only=True))
"""


def test_read_replicas_from_the_wheel(app_shell, environ):
    # The test database stands in as its own replica: a primary answers the lag query with no lag.
    replica = {"DATABASE_REPLICA_URLS": environ["DATABASE_URL"]}
    read = app_shell("python", "-c", READ_ON_A_REPLICA, **replica)
    assert read.returncode == 0 and read.stdout.strip() == "False", read.stderr
    shown = app_shell("atsboost-db", "config", "--connect", **replica)
    assert shown.returncode == 0 and "primary, replay lag 0.0 s" in shown.stdout, shown.stderr
