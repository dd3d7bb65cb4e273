"""The pytest plugin as a team meets it: atsboost's wheel, pytest, pytest-asyncio and pytest-xdist in a
new venv, a small FastAPI app, and the app's own tests with no conftest at all.
"""

import os
import re
import subprocess

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text

from atsboost.testing import databases
from tests.migrations.test_project import TEAM_MODELS
from tests.wheel import install_wheel

pytestmark = [pytest.mark.slow, pytest.mark.wheel]

PACKAGES = ("pytest", "pytest-asyncio", "pytest-xdist", "fastapi", "httpx")
PYTEST = ("python", "-m", "pytest", "-q", "-p", "no:cacheprovider")

MODELS = """
from sqlalchemy import ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from atsboost.app.models import Base


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text, unique=True)
"""

WEB = """
from fastapi import FastAPI, HTTPException
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from atsboost import aio, db
from atsboost.app.models import User
from app_models import Note

app = FastAPI()


@app.post("/notes/{body}")
def add_note(body: str):
    def work(session):
        user = session.scalars(select(User).order_by(User.id)).first()
        session.add(Note(user_id=user.id, body=body))

    try:
        db.run_transaction(work)
    except IntegrityError:
        raise HTTPException(409, "that note exists") from None
    return {"added": body}


@app.get("/users/count")
async def users():
    async with aio.session_scope(read_only=True) as session:
        return {"users": await session.scalar(select(func.count()).select_from(User))}
"""

APP_TESTS = """
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from atsboost.app import seed
from atsboost.app.models import User
from app_models import Note
from web import app

client = TestClient(app)


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def test_1_an_endpoint_commits(db_session, atsboost_seed):
    assert client.post("/notes/first").status_code == 200
    assert count(db_session, Note) == 1


def test_2_nothing_leaked_from_the_test_before(db_session):
    assert (count(db_session, Note), count(db_session, User)) == (0, 0)


def test_3_an_integrity_error_handled_by_the_app_keeps_the_seeded_rows(db_session, atsboost_seed):
    assert client.post("/notes/twice").status_code == 200
    assert client.post("/notes/twice").status_code == 409
    assert (count(db_session, Note), count(db_session, User)) == (1, 1)


@pytest.mark.asyncio
async def test_4_an_async_route_sees_the_test_s_rows(async_db_session):
    await async_db_session.run_sync(lambda session: seed.run(session))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        assert (await http.get("/users/count")).json() == {"users": 1}


@pytest.mark.atsboost_db(transactional=False)
def test_5_real_commits_are_seen_by_other_connections(db_session, atsboost_seed, atsboost_database):
    assert client.post("/notes/real").status_code == 200
    with atsboost_database.engine.connect() as other:
        assert other.scalar(select(func.count()).select_from(Note)) == 1


def test_6_and_are_gone_after_the_test(db_session):
    assert (count(db_session, Note), count(db_session, User)) == (0, 0)
"""

BROKEN_DOWNGRADE = '''
"""tickets"""
from alembic import op

revision = "0badd0000001"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE SEQUENCE tickets")


def downgrade():
    pass
'''


@pytest.fixture(scope="session")  # once per worker, though other modules' tests come between
def bin_folder(tmp_path_factory):
    return install_wheel(
        tmp_path_factory.mktemp("plugin-wheel"), extras="embedded,asyncio", packages=PACKAGES
    )


@pytest.fixture
def team(bin_folder, tmp_path, environ, pg_server):
    """A team's app folder, the commands it runs, and the template its tests build (dropped afterwards)."""
    folder = tmp_path / "notes-app"
    folder.mkdir()
    server = pg_server.url(pg_server.maintenance_dbname).render_as_string(hide_password=False)
    base = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR")}
    # DATABASE_URL is the team's development database: the tests must not touch it.
    env = {**base, **environ, "ATSBOOST_TEST_DATABASE_URL": server, "PATH": f"{bin_folder}:/usr/bin:/bin"}

    def run(*args, **extra):
        return subprocess.run(
            args, cwd=folder, env={**env, **extra}, capture_output=True, text=True, timeout=300, check=False
        )

    yield folder, run
    template = databases.template_name(folder.resolve())
    with admin(pg_server) as conn:
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [template + "%"]
        ):
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def admin(pg_server):
    url = pg_server.url(pg_server.maintenance_dbname).render_as_string(hide_password=False)
    return psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True)


def template_oid(pg_server, folder):
    with admin(pg_server) as conn:
        row = conn.execute(
            "SELECT oid FROM pg_database WHERE datname = %s", [databases.template_name(folder.resolve())]
        ).fetchone()
    return row and row[0]


def passed(outcome, count):
    assert outcome.returncode == 0, outcome.stdout[-3000:] + outcome.stderr[-3000:]
    assert re.search(rf"\b{count} passed\b", outcome.stdout), outcome.stdout[-2000:]


def test_a_fastapi_app_s_tests_get_a_migrated_database_and_a_transaction_each(team, pg_server, make_engine):
    folder, run = team
    assert run("atsboost-db", "migrate", "init").returncode == 0
    (folder / "app_models.py").write_text(MODELS)
    env_py = folder / "migrations" / "env.py"
    env_py.write_text(
        env_py.read_text().replace(
            "target_metadata = None", "from app_models import Base\n\ntarget_metadata = Base.metadata"
        )
    )
    assert run("atsboost-db", "migrate").returncode == 0  # the development database, for autogenerate
    created = run("atsboost-db", "migrate", "create", "notes", "--autogenerate")
    assert created.returncode == 0, created.stderr
    assert run("atsboost-db", "migrate").returncode == 0
    (folder / "web.py").write_text(WEB)
    (folder / "tests").mkdir()
    (folder / "tests" / "test_app.py").write_text(APP_TESTS)
    (folder / "tests" / "test_migrations.py").write_text(
        "from atsboost.testing.migrations import *  # noqa: F403\n"
    )
    (folder / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\nasyncio_default_fixture_loop_scope = "function"\n'
    )
    with make_engine().connect() as dev:
        before = dev.execute(text("SELECT count(*) FROM notes")).scalar_one()

    passed(run(*PYTEST), 10)
    built = template_oid(pg_server, folder)
    passed(run(*PYTEST), 10)
    assert template_oid(pg_server, folder) == built  # the second run reused it
    passed(run(*PYTEST, "-n", "2"), 10)
    assert template_oid(pg_server, folder) == built  # each worker cloned it, none migrated again
    passed(run(*PYTEST, "--atsboost-create-db", "tests/test_app.py"), 6)
    built = template_oid(pg_server, folder)
    passed(run(*PYTEST, "-n", "2", "--atsboost-create-db", "tests/test_app.py"), 6)
    assert template_oid(pg_server, folder) not in (None, built)  # migrated afresh, though nothing changed
    built = template_oid(pg_server, folder)

    [revision] = (folder / "migrations" / "versions").glob("*_notes.py")
    revision.write_text(revision.read_text() + "\n# reviewed\n")
    passed(run(*PYTEST), 10)
    rebuilt = template_oid(pg_server, folder)
    assert rebuilt not in (None, built)  # an edited revision rebuilt it

    head = re.search(r"^revision\b[^=]*=\s*['\"](\w+)", revision.read_text(), re.M)
    assert head is not None
    (folder / "migrations" / "versions" / "0badd0000001_tickets.py").write_text(
        BROKEN_DOWNGRADE.format(head=head.group(1))
    )
    broken = run(*PYTEST, "tests/test_migrations.py")
    assert broken.returncode == 1
    assert "1 failed, 3 passed" in broken.stdout, broken.stdout[-3000:]
    assert "revision 0badd0000001 (" in broken.stdout
    assert "its upgrade after its downgrade failed" in broken.stdout
    assert "Traceback" not in broken.stdout

    with make_engine().connect() as dev:  # the development database was never touched
        assert dev.execute(text("SELECT count(*) FROM notes")).scalar_one() == before


OWN_TESTS = """
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from atsboost import db
from team_models import User


def test_1_writes(db_session):
    db_session.add(User(id=1, handle="ada"))
    db_session.commit()
    with pytest.raises(IntegrityError), db.session_scope() as session:
        session.add(User(id=1, handle="grace"))
    assert db_session.scalar(select(func.count()).select_from(User)) == 1


def test_2_sees_nothing_of_it(db_session):
    assert db_session.scalar(select(func.count()).select_from(User)) == 0
"""


def test_a_team_with_its_own_users_table_tests_on_the_embedded_server_too(team, pg_server):
    folder, run = team
    assert run("atsboost-db", "migrate", "init", "--no-app-schema").returncode == 0
    (folder / "team_models.py").write_text(TEAM_MODELS)
    env_py = folder / "migrations" / "env.py"
    env_py.write_text(
        env_py.read_text().replace(
            "target_metadata = None",
            "from team_models import TeamBase\n\ntarget_metadata = TeamBase.metadata",
        )
    )
    assert run("atsboost-db", "migrate").returncode == 0
    assert run("atsboost-db", "migrate", "create", "users", "--autogenerate").returncode == 0
    (folder / "tests").mkdir()
    (folder / "tests" / "test_users.py").write_text(OWN_TESTS)
    (folder / "tests" / "test_migrations.py").write_text(
        "from atsboost.testing.migrations import *  # noqa: F403\n"
    )
    (folder / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["."]\n')
    passed(run(*PYTEST), 6)
    try:  # without ATSBOOST_TEST_DATABASE_URL: the project's embedded PostgreSQL, in .atsboost/
        passed(run(*PYTEST, ATSBOOST_TEST_DATABASE_URL=""), 6)
        assert (folder / ".atsboost" / "pgdata").is_dir()
    finally:
        run("atsboost-db", "dev-db", "stop", ATSBOOST_ENV="development", DATABASE_URL="")
    off = run(*PYTEST, "-p", "no:atsboost", "tests/test_users.py")
    assert "fixture 'db_session' not found" in off.stdout  # -p no:atsboost turns the plugin off


def test_the_plugin_s_errors_are_one_line(team):
    folder, run = team
    (folder / "tests").mkdir()
    (folder / "tests" / "test_x.py").write_text("def test_x(db_session):\n    pass\n")
    outcome = run(
        *PYTEST,
        ATSBOOST_TEST_DATABASE_URL="mysql://u:pw@h/d",
    )
    assert outcome.returncode == 1
    assert "atsboost: ATSBOOST_TEST_DATABASE_URL uses the scheme 'mysql'" in outcome.stdout
    assert "Traceback" not in outcome.stdout and "pw@" not in outcome.stdout
    assert "exception" not in outcome.stdout  # no chained exceptions either: the one line
