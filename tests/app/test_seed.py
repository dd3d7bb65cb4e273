import logging
import subprocess
import sys

import pytest
import sqlalchemy
from sqlalchemy import text

from atsboost import migrations
from atsboost.app import seed
from atsboost.app.passwords import verify_password
from atsboost.config.settings import load_settings
from atsboost.db import session_scope
from atsboost.errors import SeedError, SeedRefusedError

STRONG = "a-strong-first-password"
PRODUCTION = {"ATSBOOST_ENV": "production", "DATABASE_DISABLE_SSL": "true"}


@pytest.fixture
def migrated(atsboost_database):
    """The plugin's migrated test database; returns a factory of settings for it (variables override)."""
    url = atsboost_database.settings.url.sqlalchemy().render_as_string(hide_password=False)

    def make(**overrides):
        return load_settings({"ATSBOOST_ENV": "testing", "DATABASE_URL": url, **overrides})

    return make


@pytest.fixture
def engine(db_connection):
    """The engine of the test's connection: its transactions are the test's, rolled back after it."""
    return db_connection.engine


def rows(engine, sql):
    with engine.connect() as conn:
        return conn.execute(text(sql)).all()


def seed_once(engine, settings, **kwargs):
    with session_scope(engine) as session:
        return seed.run(session, settings=settings, **kwargs)


def test_seed_twice_creates_once(migrated, engine):
    settings = migrated(ADMIN_INITIAL_PASSWORD=STRONG, ADMIN_EMAIL="ops@atsboost.io")
    first = seed_once(engine, settings)
    assert first.admin_created and first.admin_email == "ops@atsboost.io"
    assert first.plans_created == ("free", "pro", "pro_yearly", "business")
    snapshot = rows(engine, "SELECT id, email, password_hash FROM users ORDER BY id") + rows(
        engine, "SELECT id, code, price_cents FROM subscription_plans ORDER BY id"
    )

    second = seed_once(engine, settings)
    assert not second.changed
    assert second.plans_created == ()
    assert second.plans_existing == ("free", "pro", "pro_yearly", "business")
    assert (
        rows(engine, "SELECT id, email, password_hash FROM users ORDER BY id")
        + rows(engine, "SELECT id, code, price_cents FROM subscription_plans ORDER BY id")
        == snapshot
    )


def test_the_admin_is_stored_as_an_argon2id_hash_that_verifies(migrated, engine):
    seed_once(engine, migrated(ADMIN_INITIAL_PASSWORD=STRONG))
    ((stored, role, must_change),) = rows(
        engine, "SELECT password_hash, role, must_change_password FROM users"
    )
    assert stored.startswith("$argon2id$")
    assert STRONG not in stored
    assert verify_password(stored, STRONG)
    assert (role, must_change) == ("admin", True)


def test_existing_plans_are_never_modified(migrated, engine):
    settings = migrated(ADMIN_INITIAL_PASSWORD=STRONG)
    seed_once(engine, settings)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE subscription_plans SET price_cents = 2500, name = 'Pro (2027)' WHERE code = 'pro'")
        )
        conn.execute(text("DELETE FROM subscription_plans WHERE code = 'business'"))
    result = seed_once(engine, settings)
    assert result.plans_created == ("business",)
    assert rows(engine, "SELECT price_cents, name FROM subscription_plans WHERE code = 'pro'") == [
        (2500, "Pro (2027)")
    ]


@pytest.mark.atsboost_db(transactional=False)
def test_four_processes_seeding_at_once(migrated, engine):
    code = (
        "from atsboost.app import seed; from atsboost.db import session_scope\n"
        "with session_scope() as s: r = seed.run(s)\n"
        "print('created' if r.admin_created else 'present', len(r.plans_created))"
    )
    database = migrated().url.sqlalchemy().render_as_string(hide_password=False)
    env = {
        "ATSBOOST_ENV": "testing",
        "DATABASE_URL": database,
        "ADMIN_INITIAL_PASSWORD": STRONG,
        "PATH": "/usr/bin:/bin",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, outputs
    reports = sorted(out.strip() for out, _ in outputs)
    assert reports == ["created 4", "present 0", "present 0", "present 0"]
    assert rows(engine, "SELECT count(*) FROM users WHERE role = 'admin'") == [(1,)]
    assert rows(engine, "SELECT count(*), count(DISTINCT code) FROM subscription_plans") == [(4, 4)]


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        (None, "ADMIN_INITIAL_PASSWORD is not set"),
        ("ChangeMe123!", "ADMIN_INITIAL_PASSWORD is the guide's published default"),
        ("short-pw", "ADMIN_INITIAL_PASSWORD is too weak: it is shorter than 12 characters"),
        (" " * 12, "ADMIN_INITIAL_PASSWORD is too weak: it is easy to guess (Repeats like"),
        ("a" * 12, "ADMIN_INITIAL_PASSWORD is too weak: it is easy to guess (Repeats like"),
        ("password1234", "ADMIN_INITIAL_PASSWORD is too weak: it is easy to guess ("),
    ],
)
def test_production_refuses_weak_admin_passwords_and_creates_nothing(migrated, engine, password, problem):
    extra = {"ADMIN_INITIAL_PASSWORD": password} if password else {}
    settings = migrated(**PRODUCTION, **extra)
    with pytest.raises(SeedRefusedError) as info:
        seed_once(engine, settings)
    assert str(info.value).startswith(f"refusing to create the first admin in production: {problem}")
    assert "Nothing was created." in str(info.value)
    if password:
        assert password not in str(info.value)
    assert rows(engine, "SELECT count(*) FROM users") == [(0,)]
    assert rows(engine, "SELECT count(*) FROM subscription_plans") == [(0,)]


def test_production_accepts_a_strong_password(migrated, engine):
    assert seed_once(engine, migrated(**PRODUCTION, ADMIN_INITIAL_PASSWORD=STRONG)).admin_created


def test_development_accepts_the_default_with_a_warning(migrated, engine, caplog):
    settings = migrated(ATSBOOST_ENV="development")
    with caplog.at_level(logging.WARNING, logger="atsboost.app.seed"):
        result = seed_once(engine, settings)
    assert result.admin_created and result.admin_email == "admin@example.com"
    assert "documented default password" in caplog.text
    ((stored,),) = rows(engine, "SELECT password_hash FROM users")
    assert verify_password(stored, "ChangeMe123!")


def test_an_existing_admin_needs_no_password_even_in_production(migrated, engine):
    seed_once(engine, migrated(ADMIN_INITIAL_PASSWORD=STRONG))
    again = seed_once(engine, migrated(**PRODUCTION))  # no ADMIN_INITIAL_PASSWORD: not needed now
    assert not again.changed


def test_email_uniqueness_is_case_insensitive_in_the_database(migrated, engine):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (email, password_hash) VALUES ('admin@example.com', 'x')"))
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="uq_users_email_lower"), engine.begin() as conn:
        conn.execute(text("INSERT INTO users (email, password_hash) VALUES ('Admin@Example.com', 'y')"))


def test_database_rules_reject_bad_rows(migrated, engine):
    bad = [
        "INSERT INTO users (email, password_hash, role) VALUES ('x@y.io', 'h', 'root')",
        "INSERT INTO subscription_plans (code, name, price_cents, billing_interval)"
        " VALUES ('p', 'P', -1, 'month')",
        "INSERT INTO subscription_plans (code, name, price_cents, billing_interval)"
        " VALUES ('p', 'P', 1, 'week')",
        "INSERT INTO subscription_plans (code, name, price_cents, billing_interval, currency)"
        " VALUES ('p', 'P', 1, 'month', 'usd')",
    ]
    for sql in bad:
        with (
            pytest.raises(sqlalchemy.exc.IntegrityError, match="violates check constraint"),
            engine.begin() as conn,
        ):
            conn.execute(text(sql))


def test_plans_in_use_cannot_be_deleted_and_users_take_their_subscriptions(migrated, engine):
    seed_once(engine, migrated(ADMIN_INITIAL_PASSWORD=STRONG))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO subscriptions"
                " (user_id, plan_id, status, current_period_start, current_period_end)"
                " SELECT u.id, p.id, 'active', now(), now() + interval '1 month'"
                " FROM users u, subscription_plans p WHERE p.code = 'pro'"
            )
        )
    with (
        pytest.raises(sqlalchemy.exc.IntegrityError, match="fk_subscriptions_plan_id"),
        engine.begin() as conn,
    ):
        conn.execute(text("DELETE FROM subscription_plans WHERE code = 'pro'"))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM users"))
    assert rows(engine, "SELECT count(*) FROM subscriptions") == [(0,)]


def test_admin_email_taken_by_a_regular_user(migrated, engine):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (email, password_hash) VALUES ('ADMIN@example.com', 'x')"))
    with pytest.raises(
        SeedError, match="ADMIN_EMAIL admin@example.com belongs to a user who is not an active admin"
    ):
        seed_once(engine, migrated(ADMIN_INITIAL_PASSWORD=STRONG))
    assert rows(engine, "SELECT count(*) FROM subscription_plans") == [(0,)]


def test_seeding_needs_the_schema_at_head(make_settings, make_engine):
    engine = make_engine()
    settings = make_settings(ADMIN_INITIAL_PASSWORD=STRONG)
    migrations.upgrade(settings, revision="055d037ec299")
    with pytest.raises(SeedError) as info:
        seed_once(engine, settings)
    assert str(info.value) == (
        "the database is not at atsboost's schema revision 7c1f9a2b4d10 (current: 055d037ec299); "
        "run `atsboost-db migrate` first, or `atsboost-db init` to migrate and seed"
    )
    assert rows(engine, "SELECT count(*) FROM users") == [(0,)]


def test_seeding_an_empty_database_names_the_command_that_creates_the_tables(make_settings, make_engine):
    engine = make_engine()
    with pytest.raises(SeedError) as info:
        seed_once(engine, make_settings(ADMIN_INITIAL_PASSWORD=STRONG))
    assert "(current: none, no tables yet); run `atsboost-db migrate` first" in str(info.value)
    assert rows(engine, "SELECT to_regclass('users') IS NULL") == [(True,)]
