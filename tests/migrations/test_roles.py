"""`atsboost-db roles`: the owner migrates, the application changes rows, and the server refuses the rest."""

import json

import psycopg
import pytest
from psycopg import errors

from atsboost.config.settings import load_settings
from atsboost.migrations import roles
from tests.conftest import add_revision
from tests.roles import as_role, drop_roles


@pytest.fixture
def names(role_settings):
    return role_settings


@pytest.fixture
def admin(database_url):
    url = database_url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def connect(database_url, role):
    return psycopg.connect(as_role(database_url.set(drivername="postgresql"), role), autocommit=True)


def grants(admin):
    """Every privilege on the schema's tables and sequences, and the default privileges."""
    return (
        admin.execute(
            "SELECT c.relname, c.relacl::text, pg_get_userbyid(c.relowner) FROM pg_class c "
            "WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1"
        ).fetchall()
        + admin.execute("SELECT defaclacl::text FROM pg_default_acl ORDER BY 1").fetchall()
    )


def test_the_sql_is_printed_without_a_password_and_says_how_to_set_one(invoke, environ, names):
    printed = invoke("roles", env={**environ, **names})
    assert printed.returncode == 0, printed.stderr
    app, owner = names["DATABASE_APP_ROLE"], names["DATABASE_OWNER_ROLE"]
    assert f'CREATE ROLE "{app}" LOGIN NOSUPERUSER' in printed.stdout
    assert (
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA "public" GRANT SELECT, INSERT'
        in printed.stdout
    )
    assert "PASSWORD" not in printed.stdout.upper()
    assert "\\password ROLE" in printed.stderr
    statements = json.loads(invoke("roles", "--json", env={**environ, **names}).stdout)["statements"]
    assert all(f"{s['sql']};" in printed.stdout for s in statements)


def test_apply_twice_creates_then_changes_nothing(invoke, environ, names, admin):
    admin.execute("CREATE TABLE legacy (id serial PRIMARY KEY)")  # made before the roles, by the superuser
    env = {**environ, **names}
    first = invoke("roles", "--apply", env=env)
    assert first.returncode == 0, first.stderr
    assert f"created   {names['DATABASE_APP_ROLE']}" in first.stdout
    assert "now owns 1 object(s): legacy" in first.stdout
    before = grants(admin)
    again = invoke("roles", "--apply", "--json", env=env)
    assert again.returncode == 0, again.stderr
    found = json.loads(again.stdout)
    assert found["created"] == [] and found["adopted"] == [] and len(found["existing"]) == 3
    assert grants(admin) == before


def test_the_application_role_changes_rows_and_the_server_refuses_the_rest(environ, names, database_url):
    roles.apply(load_settings({**environ, **names}))
    with connect(database_url, names["DATABASE_OWNER_ROLE"]) as owner:
        owner.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")  # a later revision's table
    with connect(database_url, names["DATABASE_APP_ROLE"]) as app:
        app.execute("INSERT INTO notes (body) VALUES ('no grant was written')")
        app.execute("UPDATE notes SET body = 'still none'")
        assert app.execute("SELECT count(*) FROM notes").fetchone() == (1,)
        for refused in (
            "DROP TABLE notes",
            "ALTER TABLE notes ADD COLUMN x int",
            "TRUNCATE notes",
            "CREATE TABLE mine (id int)",
            "CREATE INDEX ON notes (body)",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                app.execute(refused)
    with connect(database_url, names["DATABASE_READONLY_ROLE"]) as reader:
        assert reader.execute("SELECT count(*) FROM notes").fetchone() == (1,)
        with pytest.raises(errors.ReadOnlySqlTransaction):
            reader.execute("DELETE FROM notes")


def test_a_role_that_cannot_create_roles_is_told_who_can(invoke, environ, names, database_url, admin):
    admin.execute(f"CREATE ROLE {names['DATABASE_OWNER_ROLE']} LOGIN")
    env = {**environ, **names, "DATABASE_MIGRATION_URL": as_role(database_url, names["DATABASE_OWNER_ROLE"])}
    refused = invoke("roles", "--apply", env=env)
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("Error: the roles were not set up (permission denied to create role")
    assert "DATABASE_MIGRATION_URL naming a superuser or your provider's admin user" in line
    exists = "SELECT count(*) FROM pg_roles WHERE rolname = %s"
    assert admin.execute(exists, (names["DATABASE_APP_ROLE"],)).fetchone() == (0,)  # nothing was changed


def test_once_the_roles_exist_the_owner_applies_the_grants_itself(invoke, environ, names, database_url):
    env = {**environ, **names}
    assert invoke("roles", "--apply", env=env).returncode == 0
    owner = {**env, "DATABASE_MIGRATION_URL": as_role(database_url, names["DATABASE_OWNER_ROLE"])}
    again = invoke("roles", "--apply", env=owner)
    assert again.returncode == 0, again.stderr
    assert f"exists    {names['DATABASE_OWNER_ROLE']}" in again.stdout


def test_a_bad_schema_name_is_refused_before_connecting(invoke, environ):
    refused = invoke("roles", "--schema", "Public; DROP", env=environ)
    assert refused.returncode == 2
    assert "is not a usable schema name" in refused.stderr


def test_another_schema_is_created_for_the_owner(environ, names, admin):
    roles.apply(load_settings({**environ, **names}), "billing")
    owner = admin.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'billing'")
    assert owner.fetchone() == (names["DATABASE_OWNER_ROLE"],)


def test_migrate_warns_when_a_revision_leaves_a_table_the_application_cannot_use(
    invoke, environ, names, database_url, alembic_project
):
    roles.apply(load_settings({**environ, **names}))
    add_revision(alembic_project, "role01", 'op.execute("CREATE TABLE reports (id int PRIMARY KEY)")')
    env = {
        **environ,
        **names,
        "ATSBOOST_ALEMBIC_INI": str(alembic_project),
        "DATABASE_URL": as_role(database_url, names["DATABASE_APP_ROLE"]),
        # migrating as the superuser, not the owner: its tables get no default privileges
        "DATABASE_MIGRATION_URL": database_url.render_as_string(hide_password=False),
    }
    migrated = invoke("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    app = names["DATABASE_APP_ROLE"]
    assert (
        f"WARNING atsboost.migrations: {app} cannot use table public.reports (no SELECT, INSERT, UPDATE, "
        f"DELETE): GRANT SELECT, INSERT, UPDATE, DELETE ON public.reports TO {app}"
    ) in migrated.stderr


def test_a_provider_s_admin_that_is_no_superuser_applies_the_roles(
    invoke, environ, names, database_url, admin
):
    """As on RDS, Cloud SQL or Azure: the admin has CREATEROLE and owns the database, and is no superuser."""
    provider = f"admin_{names['DATABASE_APP_ROLE'][4:]}"
    database = database_url.database
    admin.execute(f"CREATE ROLE {provider} LOGIN CREATEROLE")
    admin.execute(f'ALTER DATABASE "{database}" OWNER TO {provider}')
    try:
        with connect(database_url, provider) as conn:
            conn.execute("CREATE TABLE legacy (id serial PRIMARY KEY)")  # the app's tables, made by the admin
        env = {**environ, **names, "DATABASE_MIGRATION_URL": as_role(database_url, provider)}
        applied = invoke("roles", "--apply", env=env)
        assert applied.returncode == 0, applied.stderr
        assert "now owns 1 object(s): legacy" in applied.stdout
        with connect(database_url, names["DATABASE_OWNER_ROLE"]) as owner:
            owner.execute("CREATE TABLE later (id int PRIMARY KEY)")
        with connect(database_url, names["DATABASE_APP_ROLE"]) as app:
            app.execute("INSERT INTO legacy DEFAULT VALUES; INSERT INTO later VALUES (1)")
            with pytest.raises(errors.InsufficientPrivilege):
                app.execute("DROP TABLE legacy")
    finally:
        admin.execute(f'ALTER DATABASE "{database}" OWNER TO CURRENT_USER')
        drop_roles(database_url, [provider])
