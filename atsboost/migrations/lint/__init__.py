"""``atsboost-db migrate lint``: each revision's SQL, parsed by PostgreSQL's parser, against the rules.

A revision's SQL is what Alembic renders offline for exactly that revision, so
the lint reads the statements the migration will send. A revision waives a rule
with a comment that gives the reason, shown in the output::

    # atsboost: allow AB001 -- the table is empty until the feature ships

``catalogue`` holds the rules, ``rules`` the checks of one statement, ``run`` the
walk over the revisions, and ``trace`` the locks a real run takes.
"""

from atsboost.migrations.lint.report import EXIT_CODES, Finding, LintReport, describe
from atsboost.migrations.lint.run import in_range, lint, unused_at_start
from atsboost.migrations.lint.statements import Statement, statements

__all__ = [
    "EXIT_CODES",
    "Finding",
    "LintReport",
    "Statement",
    "describe",
    "in_range",
    "lint",
    "statements",
    "unused_at_start",
]
