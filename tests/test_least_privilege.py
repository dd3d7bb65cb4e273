"""Least privilege as a team deploys it, from the wheel: roles, migrations as the owner, the app as its role.

Not marked ``wheel``: CI runs it on both servers, since roles and privileges are the
server's to enforce. Each step is a command of the installed package or the team's
own code; what the application role must not do is refused by the server itself.
"""

import textwrap

import psycopg
import pytest
from psycopg import errors

from tests.roles import as_role
from tests.wheel import install_wheel, shell

pytestmark = pytest.mark.slow

SYNC_WORKLOAD = """
from sqlalchemy import func, select, text
from atsboost import db
from atsboost.app.models import SubscriptionPlan, User

db.startup()  # applies the pending revision through DATABASE_MIGRATION_URL
for n in range(20):
    db.run_transaction(lambda s, n=n: s.add(User(email=f"sync-{n}@example.com", password_hash="not-a-hash")))
touch = text("UPDATE users SET last_login_at = now() WHERE email LIKE 'sync-%'")
db.run_transaction(lambda s: s.execute(touch))
db.run_transaction(lambda s: s.execute(text("DELETE FROM users WHERE email = 'sync-0@example.com'")))
with db.session_scope() as s:
    s.execute(text("INSERT INTO notes (body) VALUES ('written by the application role')"))
with db.session_scope(read_only=True) as s:
    users = s.scalar(select(func.count()).select_from(User).where(User.email.like("sync-%")))
    plans = s.scalar(select(func.count()).select_from(SubscriptionPlan))
    print(users, plans, s.scalar(text("SELECT current_user")))
db.shutdown()
"""

ASYNC_WORKLOAD = """
import asyncio
from sqlalchemy import func, select, text
from atsboost import aio
from atsboost.app.models import User

async def main():
    await aio.startup()
    for n in range(20):
        async def add(s, n=n):
            s.add(User(email=f"async-{n}@example.com", password_hash="not-a-hash"))
        await aio.run_transaction(add)
    async with aio.session_scope() as s:
        await s.execute(text("INSERT INTO notes (body) VALUES ('async')"))
    async with aio.session_scope(read_only=True) as s:
        print(await s.scalar(select(func.count()).select_from(User).where(User.email.like("async-%"))))
    await aio.shutdown()

asyncio.run(main())
"""

NOTES_UPGRADE = """
def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
"""


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    return install_wheel(tmp_path_factory.mktemp("wheel"), extras="asyncio")


@pytest.fixture
def run(installed, tmp_path, environ, role_settings):
    """Run a command of the installed package in the team's folder (the test's), with the roles' names."""
    return shell(installed, tmp_path, {**environ, **role_settings})


def test_the_application_role_runs_the_app_and_the_server_refuses_it_the_schema(
    run, tmp_path, role_settings, database_url
):
    names = role_settings
    owner, app = names["DATABASE_OWNER_ROLE"], names["DATABASE_APP_ROLE"]
    applied = run("atsboost-db", "roles", "--apply")  # as the superuser DATABASE_URL names
    assert applied.returncode == 0, applied.stderr
    assert [f"created   {role}" for role in names.values()] == applied.stdout.splitlines()[:3]
    deploy = {
        "DATABASE_URL": as_role(database_url, app),
        "DATABASE_MIGRATION_URL": as_role(database_url, owner),
    }

    assert run("atsboost-db", "migrate", "init").returncode == 0
    migrated = run("atsboost-db", "migrate", **deploy)
    assert migrated.returncode == 0, migrated.stderr
    assert "cannot use" not in migrated.stderr
    seeded = run("atsboost-db", "seed", **deploy)  # rows only: the application role is enough
    assert seeded.returncode == 0, seeded.stderr
    assert "admin     admin@example.com (created now" in seeded.stdout

    created = run("atsboost-db", "migrate", "create", "add_notes")
    assert created.returncode == 0, created.stderr
    [revision] = (tmp_path / "migrations" / "versions").glob("*_add_notes.py")
    source = revision.read_text()
    start, end = source.index("def upgrade()"), source.index("def downgrade()")
    revision.write_text(source[:start] + textwrap.dedent(NOTES_UPGRADE).lstrip() + "\n\n" + source[end:])

    synced = run("python", "-c", SYNC_WORKLOAD, **deploy)
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.split() == ["19", "4", app]
    awaited = run("python", "-c", ASYNC_WORKLOAD, **deploy)
    assert awaited.returncode == 0, awaited.stderr
    assert awaited.stdout.strip() == "20"

    libpq = database_url.set(drivername="postgresql")
    with psycopg.connect(as_role(libpq, app), autocommit=True) as conn:
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        assert owners == [(owner,)]  # the notes table too: startup() migrated as the owner
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (2,)  # with no GRANT written
        for refused in (
            "DROP TABLE users",
            "ALTER TABLE users ADD COLUMN nickname text",
            "TRUNCATE subscriptions",
            "CREATE TABLE scratch (id int)",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(refused)

    healthy = run("atsboost-db", "health", "--check", **deploy)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.startswith("DATABASE OK - ")
    as_postgres = run(
        "atsboost-db", "health", "--check", ATSBOOST_ENV="production", DATABASE_DISABLE_SSL="true"
    )
    assert as_postgres.returncode == 2, as_postgres.stdout
    assert " is a superuser: the application can drop any table" in as_postgres.stdout
