import json

import pytest

SECRET = "s3cret-pw-do-not-print"


def test_help_lists_the_commands(invoke):
    result = invoke("--help")
    assert result.returncode == 0
    for command in ("config", "dev-db"):
        assert command in result.stdout


def test_every_command_has_help(invoke):
    for args in (
        ["config"],
        ["dev-db"],
        ["dev-db", "url"],
        ["dev-db", "stop"],
        ["migrate"],
        ["migrate", "create"],
        ["migrate", "status"],
        ["migrate", "downgrade"],
        ["seed"],
        ["init"],
    ):
        result = invoke(*args, "--help")
        assert result.returncode == 0, args
        assert "Usage: atsboost-db" in result.stdout or "Usage: python -m atsboost" in result.stdout


def test_config_shows_what_the_package_will_do(invoke, ca_file_env):
    env = {
        "NODE_ENV": "production",
        "DATABASE_URL": f"postgres://app:{SECRET}@db.internal:5432/ats",
        **ca_file_env,
    }
    result = invoke("config", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "environment        production (from NODE_ENV)" in out
    assert "database           postgresql+psycopg://app:***@db.internal:5432/ats" in out
    assert "embedded           no" in out
    assert "ssl                verify-full (production default with a CA file)" in out
    assert "connections + 0 overflow (production default: min(2 x" in out
    assert "idle timeout       60 s" in out
    assert SECRET not in result.stdout + result.stderr


def test_config_json(invoke):
    env = {
        "ATSBOOST_ENV": "test",
        "DATABASE_URL": f"postgresql://app:{SECRET}@db/ats",
        "DATABASE_POOL_SIZE": "3",
    }
    result = invoke("config", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["environment"] == "testing"
    assert data["environment_origin"] == "ATSBOOST_ENV"
    assert data["database_url"] == "postgresql+psycopg://app:***@db/ats"
    assert data["pool"] == {
        "size": 3,
        "max_overflow": 0,
        "timeout_seconds": 30,
        "idle_timeout_seconds": 10,
        "size_origin": "DATABASE_POOL_SIZE",
    }
    assert data["ssl"]["mode"] is None
    assert SECRET not in result.stdout


def test_config_connect_against_the_test_database(invoke, environ):
    result = invoke("config", "--connect", "--json", env=environ)
    assert result.returncode == 0, result.stderr
    server = json.loads(result.stdout)["server"]
    assert server["database"].startswith("atsboost_test")


def test_production_warnings_are_shown(invoke):
    env = {"ATSBOOST_ENV": "prod", "DATABASE_URL": "postgresql://db/ats", "DATABASE_DISABLE_SSL": "yes"}
    result = invoke("config", env=env)
    assert result.returncode == 0
    assert "WARNING: DATABASE_DISABLE_SSL=true in production" in result.stdout
    assert "WARNING atsboost.config.settings: DATABASE_DISABLE_SSL=true in production" in result.stderr


def test_bad_input_is_one_line_and_exit_1(invoke):
    env = {"ATSBOOST_ENV": "production", "DATABASE_URL": f"mysql://app:{SECRET}@db/ats"}
    result = invoke("config", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: DATABASE_URL uses the scheme 'mysql', but atsboost works with PostgreSQL only; "
        "use a postgresql:// (or postgres://) URL"
    ]
    assert SECRET not in result.stdout + result.stderr


def test_debug_shows_the_traceback(invoke):
    result = invoke("--debug", "config", env={"ATSBOOST_ENV": "staging"})
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ATSBOOST_ENV='staging'")


def test_unreachable_database_is_one_line_without_password(invoke, unused_tcp_port):
    env = {
        "ATSBOOST_ENV": "testing",
        "DATABASE_URL": f"postgresql://app:{SECRET}@127.0.0.1:{unused_tcp_port}/db",
    }
    result = invoke("config", "--connect", env=env)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"Error: cannot connect to postgresql+psycopg://app:***@127.0.0.1:{unused_tcp_port}/db"
    )
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_migrate_status_exit_codes_and_migrate(invoke, environ):
    pending = invoke("migrate", "status", env=environ)
    assert pending.returncode == 3, pending.stderr
    assert "pending  2" in pending.stdout

    dry = invoke("migrate", "--dry-run", env=environ)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("-- atsboost dry run")
    assert invoke("migrate", "status", env=environ).returncode == 3  # the dry run applied nothing

    applied = invoke("migrate", env=environ)
    assert applied.returncode == 0, applied.stderr
    assert "applying 055d037ec299 (initial schema" in applied.stderr
    assert applied.stdout.startswith("applied 2 revision(s) in ")

    done = invoke("migrate", "status", "--json", env=environ)
    assert done.returncode == 0
    assert json.loads(done.stdout)["up_to_date"] is True
    assert invoke("migrate", env=environ).stdout.startswith(
        "nothing to migrate: the database is at 7c1f9a2b4d10"
    )


def test_migrate_force_gate_from_the_cli(invoke, environ):
    env = {
        **environ,
        "NODE_ENV": "production",
        "ATSBOOST_ENV": "",
        "DATABASE_DISABLE_SSL": "true",
        "MIGRATION_REQUIRE_FORCE": "true",
    }
    refused = invoke("migrate", env=env)
    assert refused.returncode == 1
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .startswith("Error: refusing to apply 2 revision(s) in production")
    )
    assert invoke("migrate", "status", env=env).returncode == 3
    forced = invoke("migrate", "--force", env=env)
    assert forced.returncode == 0, forced.stderr


@pytest.mark.parametrize("name", ["../x", "a b", ""])
def test_migrate_create_refuses_bad_names(invoke, name, alembic_project):
    versions = alembic_project.parent / "alembic" / "versions"
    before = sorted(versions.iterdir())
    result = invoke("migrate", "create", name, env={"ATSBOOST_ALEMBIC_INI": str(alembic_project)})
    assert result.returncode == 1
    assert "use only letters, digits, '_' and '-'" in result.stderr
    assert sorted(versions.iterdir()) == before


def test_init_on_an_empty_database_then_again(invoke, environ, make_engine):
    env = {**environ, "ADMIN_INITIAL_PASSWORD": "a-strong-first-password", "ADMIN_EMAIL": "ops@atsboost.io"}
    first = invoke("init", env=env)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "revision  7c1f9a2b4d10 (applied 2 revision(s) now)" in out
    assert "admin     ops@atsboost.io (created now; must change the password at first login)" in out
    assert "plan      pro          Pro                 19.00 USD/month  (created now)" in out
    assert out.rstrip().endswith("initialised the database")
    assert "a-strong-first-password" not in out + first.stderr

    second = invoke("init", env=env)
    assert second.returncode == 0, second.stderr
    assert "revision  7c1f9a2b4d10 (already at head)" in second.stdout
    assert "admin     ops@atsboost.io (already present)" in second.stdout
    assert "(created now)" not in second.stdout
    assert second.stdout.rstrip().endswith("nothing changed: the database was already initialised")


def test_migrate_downgrade_minus_one_as_the_readme_shows(invoke, environ):
    assert invoke("migrate", env=environ).returncode == 0
    reverted = invoke("migrate", "downgrade", "-1", env=environ)
    assert reverted.returncode == 0, reverted.stderr
    assert reverted.stdout.startswith("reverted 1 revision(s) in ")
    assert reverted.stdout.strip().endswith("now at 055d037ec299")


def test_seed_reports_json(invoke, environ):
    assert invoke("migrate", env=environ).returncode == 0
    result = invoke("seed", "--json", env={**environ, "ADMIN_INITIAL_PASSWORD": "a-strong-first-password"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["admin_created"] is True
    assert data["plans_created"] == ["free", "pro", "pro_yearly", "business"]


def test_bad_catalogue_fails_before_touching_the_database(invoke, environ, tmp_path):
    bad = tmp_path / "plans.toml"
    bad.write_text(
        'version = 1\n[[plans]]\ncode = "pro"\nname = "Pro"\nprice_cents = -1\nbilling_interval = "month"\n'
    )
    result = invoke("init", "--plans", str(bad), env=environ)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: {bad}: plan 'pro' (#1), field 'price_cents': "
        "must be a whole number of cents from 0 to 2,147,483,647, got -1"
    )
    assert invoke("migrate", "status", env=environ).returncode == 3  # not even migrated


def test_invalid_admin_email_is_refused_at_start_up(invoke, environ):
    result = invoke("seed", env={**environ, "ADMIN_EMAIL": "not-an-email"})
    assert result.returncode == 1
    assert "Error: ADMIN_EMAIL='not-an-email' is not a usable email address" in result.stderr


def test_config_prints_the_connection_arithmetic(invoke, environ, make_engine):
    with make_engine().connect() as conn:
        limit = int(conn.exec_driver_sql("SHOW max_connections").scalar_one())
        reserved = int(conn.exec_driver_sql("SHOW superuser_reserved_connections").scalar_one())
    result = invoke(
        "config", "--connect", env={**environ, "DATABASE_POOL_SIZE": "4", "DATABASE_MAX_OVERFLOW": "1"}
    )
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("connections"))
    usable = limit - reserved
    assert f"up to 5 per process (pool size + overflow); the server allows {usable}" in line
    assert f"at most {usable // 5} such processes (instances x workers)" in line


def test_config_shows_transaction_pooling(invoke):
    env = {
        "ATSBOOST_ENV": "production",
        "DATABASE_URL": "postgresql://app:pw@pooler.example.com:6543/app",
        "DATABASE_MIGRATION_URL": "postgresql://app:pw@db.example.com:5432/app",
        "DATABASE_POOL_MODE": "transaction",
    }
    result = invoke("config", env=env)
    assert result.returncode == 0, result.stderr
    assert "pool mode          transaction (behind a transaction pooler)" in result.stdout
    assert "migrations via     postgresql+psycopg://app:***@db.example.com:5432/app" in result.stdout
    assert "pw@" not in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["health", "--warning-connections", "-5"], "-5.0 is not in the range 0<=x<=100"),
        (["health", "--warning-connections", "200"], "200.0 is not in the range 0<=x<=100"),
        (["health", "--critical-idle-transaction", "nan"], "'nan' is not a finite number"),
        (
            ["health", "--warning-connections", "90", "--critical-connections", "50"],
            "--critical-connections (50) would turn CRITICAL before --warning-connections (90)",
        ),
        (
            ["health", "--warning-cache-hit", "90", "--critical-cache-hit", "95"],
            "--critical-cache-hit (95) would turn CRITICAL before --warning-cache-hit (90)",
        ),
        (["health", "--critical-query-seconds", "10"], "--critical-query-seconds (10) is below"),
        (["migrate", "downgrade", ""], "downgrade needs the revision to go down to"),
        (["migrate", "lint", "--range", "a:b:c"], "--range 'a:b:c' is not A:B"),
        (["migrate", "lint", "--range", "base:nope"], "--range 'base:nope' names no range"),
    ],
)
def test_bad_command_inputs_are_one_line_before_anything_is_done(invoke, environ, args, expected):
    result = invoke(*args, env=environ)
    assert result.returncode in (1, 2), result.stdout
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_an_alembic_ini_that_is_not_one_is_named(invoke, environ, tmp_path):
    (tmp_path / "not.ini").write_text("just text\n")
    result = invoke("migrate", "status", env={**environ, "ATSBOOST_ALEMBIC_INI": str(tmp_path / "not.ini")})
    assert result.returncode == 1
    assert "not.ini is not an Alembic ini file (MissingSectionHeaderError)" in result.stderr
