"""The role names come from settings, with defaults a project can keep."""

from atsboost.config.settings import RoleNames, load_settings

BASE = {"ATSBOOST_ENV": "testing", "DATABASE_URL": "postgresql://app@db.internal/ats"}


def test_the_defaults_are_three_roles_of_atsboost():
    assert load_settings(BASE).roles == RoleNames("atsboost_owner", "atsboost_app", "atsboost_readonly")


def test_each_name_is_its_setting():
    names = {"DATABASE_OWNER_ROLE": "shop_owner", "DATABASE_APP_ROLE": "shop", "DATABASE_READONLY_ROLE": "bi"}
    assert load_settings({**BASE, **names}).roles == RoleNames("shop_owner", "shop", "bi")
