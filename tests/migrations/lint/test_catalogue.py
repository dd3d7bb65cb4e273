"""The catalogue as the docs show it: every rule's row in docs/migrations.md is the rule itself."""

from atsboost.migrations.lint.catalogue import RULES
from tests.conftest import REPO


def test_the_docs_table_lists_every_rule_as_it_is():
    docs = (REPO / "docs" / "migrations.md").read_text()
    for rule in RULES.values():
        assert f"| {rule.id} | {rule.severity} | {rule.problem} | {rule.lock} | {rule.recipe} |" in docs, (
            rule.id
        )
