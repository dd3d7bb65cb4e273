"""The corpus, rule by rule: each dangerous form breaks exactly its rules, each safe form none."""

import pytest

from atsboost.migrations.lint import lint
from atsboost.migrations.lint.catalogue import RULES
from tests.conftest import add_revision
from tests.migrations.lint.corpus import DANGEROUS, SAFE, SETUP


def findings_of(make_settings, alembic_project, body):
    """Lint from base, so the schema the case changes is known; return the case revision's findings."""
    add_revision(alembic_project, "corpus00", SETUP)
    add_revision(alembic_project, "case01", body)
    report = lint(make_settings(ATSBOOST_ALEMBIC_INI=str(alembic_project)), span="base:heads")
    return [f for f in report.findings if f.revision == "case01" and f.waived is None]


@pytest.mark.parametrize("case", DANGEROUS, ids=[case.name for case in DANGEROUS])
def test_a_dangerous_form_breaks_its_rules(case, make_settings, alembic_project):
    found = findings_of(make_settings, alembic_project, case.body)
    assert {f.rule for f in found} == case.rules, [f"{f.rule} {f.table} {f.detail}" for f in found]
    assert all(f.table or f.rule in ("AB016", "AB020") for f in found)


@pytest.mark.parametrize("case", SAFE, ids=[case.name for case in SAFE])
def test_a_safe_form_breaks_none(case, make_settings, alembic_project):
    found = findings_of(make_settings, alembic_project, case.body)
    assert found == [], [f"{f.rule} {f.table} {f.detail}" for f in found]


def test_every_rule_has_dangerous_and_safe_forms():
    assert len(DANGEROUS) >= 60 and len(SAFE) >= 30
    caught = {rule for case in DANGEROUS for rule in case.rules}
    twins = {case.of for case in SAFE}
    assert caught == set(RULES) and twins == set(RULES), (set(RULES) - caught, set(RULES) - twins)
