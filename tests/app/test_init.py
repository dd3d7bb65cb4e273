import pytest

from atsboost.app.init import initialize

STRONG = "a-strong-first-password"


@pytest.fixture
def engine(make_engine):
    return make_engine()


def test_initialize_migrates_then_seeds_and_is_then_a_no_op(make_settings, engine):
    settings = make_settings(ADMIN_INITIAL_PASSWORD=STRONG)
    first = initialize(settings)
    assert first.changed and first.revision == ("7c1f9a2b4d10",)
    assert len(first.migration.applied) == 2 and first.seed.admin_created
    assert [p.code for p in first.plans] == ["free", "pro", "pro_yearly", "business"]
    second = initialize(settings)
    assert not second.changed


BAD_CATALOGUES = {
    "price too large": 'price_cents = 3000000000\nbilling_interval = "month"',
    "price not whole": 'price_cents = 9.99\nbilling_interval = "month"',
    "limit infinite": 'price_cents = 0\nbilling_interval = "month"\nlimits = { resumes = inf }',
    "limit not a number": 'price_cents = 0\nbilling_interval = "month"\nlimits = { resumes = nan }',
    "sort order too large": 'price_cents = 0\nbilling_interval = "month"\nsort_order = 99999999999',
}


@pytest.mark.parametrize("case", BAD_CATALOGUES)
def test_init_refuses_a_bad_catalogue_before_touching_the_database(invoke, environ, engine, tmp_path, case):
    plans = tmp_path / "plans.toml"
    plans.write_text(f'version = 1\n[[plans]]\ncode = "pro"\nname = "Pro"\n{BAD_CATALOGUES[case]}\n')
    result = invoke("init", "--plans", str(plans), env=environ)
    assert result.returncode == 1
    assert f"Error: {plans}: plan 'pro' (#1), field" in result.stderr
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT to_regclass('alembic_version') IS NULL").scalar_one()


def test_init_refuses_a_weak_production_password_before_migrating(invoke, environ, engine):
    env = {**environ, "ATSBOOST_ENV": "production", "DATABASE_DISABLE_SSL": "true"}
    result = invoke("init", env={**env, "ADMIN_INITIAL_PASSWORD": "aaaaaaaaaaaaaaaa"})
    assert result.returncode == 1
    assert "ADMIN_INITIAL_PASSWORD is too weak: it is easy to guess" in result.stderr
    assert "aaaaaaaaaaaaaaaa" not in result.stdout + result.stderr
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT to_regclass('alembic_version') IS NULL").scalar_one()


@pytest.fixture
def new_database(pg_server):
    """The URL of a database that does not exist yet on the suite's server, and a role without CREATEDB."""
    import psycopg

    admin = pg_server.url(pg_server.maintenance_dbname).render_as_string(hide_password=False)
    admin = admin.replace("postgresql+psycopg", "postgresql")
    names = ("atsboost_made_by_init", "atsboost_not_made", "atsboost_nocreate")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {names[2]}")
        conn.execute(f"CREATE ROLE {names[2]} LOGIN")
    yield {name: pg_server.url(name) for name in names[:2]}, names[2]
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names[:2]:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"DROP ROLE IF EXISTS {names[2]}")


def test_init_creates_a_database_that_does_not_exist_and_says_so(invoke, new_database):
    urls, _ = new_database
    url = urls["atsboost_made_by_init"].render_as_string(hide_password=False)
    first = invoke("init", env={"ATSBOOST_ENV": "testing", "DATABASE_URL": url})
    assert first.returncode == 0, first.stderr
    assert "(created now: it did not exist)" in first.stdout.splitlines()[0]
    assert "revision  7c1f9a2b4d10 (applied 2 revision(s) now)" in first.stdout
    again = invoke("init", env={"ATSBOOST_ENV": "testing", "DATABASE_URL": url})
    assert "created now" not in again.stdout.splitlines()[0]


def test_a_role_that_may_not_create_it_is_told_what_to_ask_for(invoke, new_database):
    urls, role = new_database
    url = urls["atsboost_not_made"].set(username=role, password=None).render_as_string(hide_password=False)
    refused = invoke("init", env={"ATSBOOST_ENV": "testing", "DATABASE_URL": url})
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"Error: the database atsboost_not_made does not exist and the role {role} may not create it; "
        f"create it as an administrator (CREATE DATABASE atsboost_not_made OWNER {role}), "
        "or give the role CREATEDB"
    )
