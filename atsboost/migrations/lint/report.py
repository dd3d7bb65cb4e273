"""What the lint found: one finding per rule broken, and the report over the revisions linted."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from atsboost.migrations.lint.catalogue import ERROR, RULES

EXIT_CODES = {"clean": 0, "warnings": 1, "errors": 2}


@dataclass(frozen=True)
class Finding:
    """One rule broken by one revision, with the lock it takes and the safe recipe."""

    revision: str
    rule: str
    severity: str
    table: str
    problem: str
    lock: str
    recipe: str
    waived: str | None = None  # the reason given in the revision, when waived
    unchecked: tuple[str, ...] = ()  # the rules that could not be checked (a revision not rendered)
    detail: str = ""  # what the rule found: the column, the constraint, the type change
    subject: str = ""  # the index it is about, when its table is not known


@dataclass
class LintReport:
    """Every finding of the revisions linted; ``verdict`` is clean, warnings or errors (waived ones aside)."""

    revisions: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    rendered: dict[str, str] = field(default_factory=dict, repr=False)  # the offline SQL linted, by revision
    unrendered: dict[str, str] = field(default_factory=dict)  # why a revision's SQL could not be rendered
    consulted: list[str] = field(default_factory=list)  # what was read from the database's catalog

    @property
    def verdict(self) -> str:
        """The worst unwaived severity: 'errors', 'warnings' or 'clean'."""
        live = {f.severity for f in self.findings if f.waived is None}
        return "errors" if ERROR in live else "warnings" if live else "clean"

    def exempt(self, absent: set[str], empty: set[str]) -> None:
        """Drop the findings on what the run creates (``absent`` at its start); the lock ones on ``empty``."""

        def exempt(finding: Finding) -> bool:
            rule, name = RULES[finding.rule], finding.table or finding.subject
            return rule.exempt_if_new and (name in absent or (rule.exempt_if_empty and name in empty))

        self.findings = [f for f in self.findings if not exempt(f)]

    def as_dict(self) -> dict[str, Any]:
        """Return the report as the JSON ``migrate lint --json`` prints."""
        return {
            "verdict": self.verdict,
            "revisions": self.revisions,
            "findings": [asdict(f) for f in self.findings],
            "consulted": self.consulted,
        }


def describe(finding: Finding) -> str:
    """One line: the revision, the rule, the table, the problem, the lock and the safe recipe."""
    where = f" on {finding.table}" if finding.table else ""
    where += f" ({finding.detail})" if finding.detail else ""
    unchecked = f"; not checked: {', '.join(finding.unchecked)}" if finding.unchecked else ""
    return (
        f"revision {finding.revision}: {finding.rule}{where}: {finding.problem} "
        f"({finding.lock}); safe: {finding.recipe}{unchecked}"
    )
