import pytest

from atsboost.app.catalogue import load_catalogue
from atsboost.errors import CatalogueError

GOOD = """
version = 1
[[plans]]
code = "free"
name = "Free"
price_cents = 0
billing_interval = "month"

[[plans]]
code = "pro"
name = "Pro"
price_cents = 1900
billing_interval = "month"
"""


def write(tmp_path, text):
    path = tmp_path / "plans.toml"
    path.write_text(text)
    return path


def test_the_shipped_catalogue_is_valid():
    plans = load_catalogue()
    codes = [p.code for p in plans]
    assert codes[0] == "free" and "pro" in codes and "business" in codes
    assert plans[0].price_cents == 0
    assert all(p.currency == "USD" and p.features for p in plans)


def test_defaults_for_optional_fields(tmp_path):
    free, pro = load_catalogue(write(tmp_path, GOOD))
    assert (free.currency, free.features, free.limits, free.is_active) == ("USD", (), {}, True)
    assert (free.sort_order, pro.sort_order) == (10, 20)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("price_cents = 1900", "price_cents = -5"),
            "plan 'pro' (#2), field 'price_cents': "
            "must be a whole number of cents from 0 to 2,147,483,647, got -5",
        ),
        (('name = "Pro"\n', ""), "plan 'pro' (#2), field 'name': missing"),
        (
            ('name = "Pro"\n', 'name = "Pro"\ncolour = "gold"\n'),
            "plan 'pro' (#2), field 'colour': unknown field",
        ),
        (('code = "pro"', 'code = "free"'), "plan 'free' (#2), field 'code': duplicate of plan #1"),
        (('code = "pro"', 'code = "Pro Plan"'), "plan 'Pro Plan' (#2), field 'code': must be lower-case"),
        (("price_cents = 1900", "price_cents = 19.5"), "field 'price_cents': must be a whole number"),
        (
            ("price_cents = 1900", 'price_cents = 1900\ncurrency = "usd"'),
            "field 'currency': must be a three-letter",
        ),
        (
            ("price_cents = 1900", "price_cents = 1900\nfeatures = [1]"),
            "field 'features': must be a list of texts",
        ),
        (
            ("price_cents = 1900", "price_cents = 1900\nlimits = { resumes = -1 }"),
            "field 'limits': must be a table of names to numbers from 0 up, booleans or texts",
        ),
    ],
)
def test_each_error_names_file_plan_and_field(tmp_path, change, expected):
    old, new = change
    assert GOOD.count(old) == 1
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(CatalogueError) as info:
        load_catalogue(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


def test_bad_interval_on_the_first_plan(tmp_path):
    path = write(tmp_path, GOOD.replace('billing_interval = "month"', 'billing_interval = "daily"', 1))
    with pytest.raises(CatalogueError, match=r"plan 'free' \(#1\), field 'billing_interval': must be one of"):
        load_catalogue(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version = 2\n[[plans]]\ncode='a'", "'version' must be 1"),
        ("version = 1\n", "no plans"),
        ("version = 1\nextra = true\n", "unknown top-level key 'extra'"),
        ("version = 1\n[[plans]\n", "not a valid TOML file"),
    ],
)
def test_file_level_errors(tmp_path, text, expected):
    with pytest.raises(CatalogueError, match=expected):
        load_catalogue(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(CatalogueError, match="cannot read the plan catalogue"):
        load_catalogue(tmp_path / "nope.toml")
