"""The role checks, as `health` (text, JSON, Prometheus) and `config --connect` show them."""

import json

import psycopg
import pytest

from tests.health.test_exposition import metrics_of
from tests.roles import as_role


@pytest.fixture
def production(environ):
    """The same database in production (a local server without SSL, as the test servers are)."""
    return {**environ, "ATSBOOST_ENV": "production", "DATABASE_DISABLE_SSL": "true"}


def test_a_superuser_application_is_a_warning_outside_production_and_critical_in_it(
    invoke, environ, production
):
    assert invoke("migrate", env=environ).returncode == 0
    testing = invoke("health", "--check", env=environ)
    assert testing.returncode == 1, testing.stdout
    assert "role: postgres is a superuser: the application can drop any table" in testing.stdout
    critical = invoke("health", "--check", env=production)
    assert critical.returncode == 2, critical.stdout
    assert critical.stdout.startswith("DATABASE CRITICAL - role: postgres is a superuser")
    shown = invoke("config", "--connect", env=production)
    assert shown.returncode == 0, shown.stderr
    assert "role               postgres: superuser, CREATEROLE, BYPASSRLS" in shown.stdout
    assert "CRITICAL: role: postgres is a superuser" in shown.stdout


def test_the_least_role_is_ok_in_every_format(invoke, least_privilege):
    assert invoke("migrate", env=least_privilege).returncode == 0
    app = least_privilege["DATABASE_APP_ROLE"]
    text = invoke("health", env=least_privilege).stdout
    assert f"ROLE             {app}\n  attributes     superuser no, CREATEROLE no, BYPASSRLS no" in text
    assert "  owns           no table it uses\n  lacks          nothing on the tables it uses" in text
    data = json.loads(invoke("health", "--json", env=least_privilege).stdout)
    assert data["role"]["superuser"] is False and data["role"]["owns"] == data["role"]["missing"] == []
    assert {"name": "role", "status": "ok", "message": f"{app}: changes rows only"} in data["checks"]
    found = metrics_of(invoke("health", "--format", "prometheus", env=least_privilege).stdout)
    assert found[("atsboost_health_role_attribute", (("attribute", "superuser"), ("role", app)))] == 0
    assert found[("atsboost_health_role_owned_tables", ())] == 0
    assert found[("atsboost_health_check_status", (("check", "role"),))] == 0
    connected = invoke("config", "--connect", env=least_privilege).stdout
    assert (
        f"role               {app}: no attribute beyond LOGIN; owns no table it uses; lacks nothing"
        in connected
    )


def test_an_application_connected_as_the_owner_is_warned(invoke, least_privilege, database_url):
    assert invoke("migrate", env=least_privilege).returncode == 0
    owner = least_privilege["DATABASE_OWNER_ROLE"]
    as_owner = {**least_privilege, "DATABASE_URL": least_privilege["DATABASE_MIGRATION_URL"]}
    checked = invoke("health", "--check", env=as_owner)
    assert checked.returncode == 1
    assert f"role: {owner}: owns 3 table(s) it uses (public.subscription_plans, public.subscriptions" in (
        checked.stdout.replace("public.alembic_version, public.atsboost_checksums, ", "").replace(
            "5 table", "3 table"
        )
    )
    found = metrics_of(invoke("health", "--format", "prometheus", env=as_owner).stdout)
    assert found[("atsboost_health_role_owned_tables", ())] == 5  # with Alembic's and atsboost's records


def test_a_table_the_application_cannot_use_is_named_with_its_grant(invoke, least_privilege, database_url):
    assert invoke("migrate", env=least_privilege).returncode == 0
    admin = database_url.set(drivername="postgresql").render_as_string(hide_password=False)
    app = least_privilege["DATABASE_APP_ROLE"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE TABLE audit (id int PRIMARY KEY)")  # by the superuser: no default privileges
    checked = invoke("health", "--check", env=least_privilege)
    assert checked.returncode == 1
    grant = f"GRANT SELECT, INSERT, UPDATE, DELETE ON public.audit TO {app}"
    assert f"privileges: {app}: public.audit lacks SELECT, INSERT, UPDATE, DELETE: {grant}" in checked.stdout
    found = metrics_of(invoke("health", "--format", "prometheus", env=least_privilege).stdout)
    assert found[("atsboost_health_role_missing_privileges", (("object", "public.audit"),))] == 4
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(grant)
    assert invoke("health", "--check", env=least_privilege).returncode == 0
    with psycopg.connect(as_role(database_url.set(drivername="postgresql"), app), autocommit=True) as conn:
        conn.execute("INSERT INTO audit VALUES (1)")
