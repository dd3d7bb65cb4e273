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
