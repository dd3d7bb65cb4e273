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
