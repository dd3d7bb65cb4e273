"""``atsboost-db migrate lint``: each revision's SQL, parsed by PostgreSQL's parser, against the rules.

A revision's SQL is what Alembic renders offline for exactly that revision, so
the lint reads the statements the migration will send. A revision waives a rule
with a comment that gives the reason, shown in the output::

    # atsboost: allow AB001 -- the table is empty until the feature ships
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from pglast import ast, parse_sql
from pglast.parser import ParseError
from sqlalchemy import Connection, text

from atsboost.config.settings import Settings
from atsboost.errors import MigrationError, RevisionNotRenderableError
from atsboost.migrations.lint_catalogue import ERROR, RULES, SQL_RULES, UNRENDERED
from atsboost.migrations.lint_rules import Context, check, validated_not_null
from atsboost.migrations.options import MigrationOptions
from atsboost.migrations.project import alembic_config, script_directory
from atsboost.migrations.rendering import render

_WAIVER = re.compile(r"#\s*atsboost:\s*allow\s+(AB\d{3})\s+--\s*(\S.*)")
EXIT_CODES = {"clean": 0, "warnings": 1, "errors": 2}
# Whether a finding's relation exists, and the table whose rows count: its own, or an index's table.
_TABLE_OF = text(
    "SELECT to_regclass(:name) IS NOT NULL, (SELECT coalesce(i.indrelid, c.oid)::regclass::text "
    "FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid "
    "WHERE c.oid = to_regclass(:name) AND c.relkind IN ('r', 'p', 'm', 'i', 'I'))"
)


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


@dataclass
class LintReport:
    """Every finding of the revisions linted; ``verdict`` is clean, warnings or errors (waived ones aside)."""

    revisions: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    rendered: dict[str, str] = field(default_factory=dict, repr=False)  # the offline SQL linted, by revision
    unrendered: dict[str, str] = field(default_factory=dict)  # why a revision's SQL could not be rendered

    @property
    def verdict(self) -> str:
        """The worst unwaived severity: 'errors', 'warnings' or 'clean'."""
        live = {f.severity for f in self.findings if f.waived is None}
        return "errors" if ERROR in live else "warnings" if live else "clean"

    def exempt(self, tables: set[str]) -> None:
        """Drop the lock findings on ``tables`` (empty or not yet created when the run starts)."""
        self.findings = [f for f in self.findings if not (RULES[f.rule].exempt_if_new and f.table in tables)]

    def as_dict(self) -> dict[str, Any]:
        """Return the report as the JSON ``migrate lint --json`` prints."""
        return {
            "verdict": self.verdict,
            "revisions": self.revisions,
            "findings": [asdict(f) for f in self.findings],
        }


def lint(
    settings: Settings | None = None,
    *,
    revisions: list[str] | None = None,
    span: str | None = None,
    one_run: bool = False,
) -> LintReport:
    """Lint the given revisions (ids), or those in ``span`` ('A:B'), or every revision from base.

    ``one_run``: the revisions are applied together, in this order (a pending plan),
    so a table an earlier one creates is as new to the later ones as to itself.
    A revision that cannot be rendered offline is a finding of its own (AB016).
    """
    config = alembic_config(settings, MigrationOptions("lint", settings=settings))
    scripts = script_directory(config)
    chosen = revisions if revisions is not None else in_range(scripts, span or "base:heads")
    report = LintReport(revisions=chosen)
    created: set[str] = set()
    for revision in chosen:
        script = scripts.get_revision(revision)
        if script is None:
            raise MigrationError(
                f"no revision {revision!r} in this project; `atsboost-db migrate status` lists them"
            )
        try:
            report.rendered[revision] = render(settings, script, scripts)
        except RevisionNotRenderableError as exc:
            report.unrendered[revision] = exc.reason
            report.findings.append(_unrendered(script, exc.reason))
            continue
        findings, new = _lint_revision(report.rendered[revision], script, created if one_run else set())
        report.findings += findings
        created |= new
    return report


def rowless_tables(conn: Connection, names: set[str]) -> set[str]:
    """Return which of ``names`` hold no row now, or do not exist yet: no one waits on their locks.

    A table that does not exist when a run starts is created by the run itself, maybe
    by a revision that cannot be rendered. Each check reads one row at most.
    """
    found = set()
    for name in names:
        exists, table = conn.execute(_TABLE_OF, {"name": name}).one()
        if not exists or (
            table is not None and not conn.execute(text(f"SELECT EXISTS (SELECT FROM {table})")).scalar()
        ):
            found.add(name)
    conn.rollback()
    return found


def _unrendered(script: Script, reason: str) -> Finding:
    rule = RULES[UNRENDERED]
    problem = f"its {rule.problem} ({reason})"
    args = (script.revision, rule.id, rule.severity, "", problem, rule.lock, rule.recipe)
    return Finding(*args, _waivers(Path(script.path)).get(rule.id), unchecked=SQL_RULES)


def describe(finding: Finding) -> str:
    """One line: the revision, the rule, the table, the problem, the lock and the safe recipe."""
    where = f" on {finding.table}" if finding.table else ""
    unchecked = f"; not checked: {', '.join(finding.unchecked)}" if finding.unchecked else ""
    return (
        f"revision {finding.revision}: {finding.rule}{where}: {finding.problem} "
        f"({finding.lock}); safe: {finding.recipe}{unchecked}"
    )


def in_range(scripts: ScriptDirectory, span: str) -> list[str]:
    """Return the revisions after A up to B for ``span`` 'A:B' (A may be base, B heads), oldest first."""
    lower, separator, upper = span.partition(":")
    if not separator or not lower or not upper or ":" in upper:
        raise MigrationError(f"--range {span!r} is not A:B; e.g. base:heads, or 055d037ec299:heads")
    try:
        found = list(scripts.iterate_revisions(upper, lower))
    except (CommandError, RevisionError) as exc:
        raise MigrationError(
            f"--range {span!r} names no range of this project's revisions ({exc}); "
            "`atsboost-db migrate status` lists them"
        ) from None
    return [script.revision for script in reversed(list(found)) if script.revision != lower]


def _lint_revision(sql: str, script: Script, created_before: set[str]) -> tuple[list[Finding], set[str]]:
    """Return the revision's findings, and the tables it creates."""
    parsed = statements(sql, script)
    new = {_table(s.node.relation) for s in parsed if isinstance(s.node, ast.CreateStmt)}
    created = new | created_before
    validated = validated_not_null([s.node for s in parsed])
    waivers = _waivers(Path(script.path))
    findings = []
    for statement in parsed:
        context = Context(statement.in_transaction, validated)
        for hit in check(statement.node, context, new_tables=created):
            rule = hit.rule
            findings.append(
                Finding(
                    script.revision,
                    rule.id,
                    rule.severity,
                    hit.table,
                    rule.problem,
                    rule.lock,
                    rule.recipe,
                    waivers.get(rule.id),
                )
            )
    return findings, new


@dataclass(frozen=True)
class Statement:
    """One statement of a revision's SQL: its parse tree, its text, and whether a transaction wraps it."""

    node: Any
    text: str
    in_transaction: bool


def statements(sql: str, script: Script) -> list[Statement]:
    """Parse a revision's rendered SQL into its statements, without Alembic's bookkeeping and SETs."""
    try:
        parsed = parse_sql(sql)
    except ParseError as exc:
        raise MigrationError(
            f"revision {script.revision}: its SQL does not parse ({exc}); fix the revision"
        ) from None
    found, in_transaction = [], False
    for raw in parsed:
        node = raw.stmt
        if isinstance(node, ast.TransactionStmt):
            kind = node.kind.name if node.kind is not None else ""
            in_transaction = kind.endswith(("BEGIN", "START"))
        elif not _bookkeeping(node):
            start = raw.stmt_location or 0
            end = start + raw.stmt_len if raw.stmt_len else len(sql)
            found.append(Statement(node, sql[start:end].strip(), in_transaction))
    return found


def _bookkeeping(statement: Any) -> bool:
    """Alembic's own version table, and the session settings every run starts with."""
    relation = getattr(statement, "relation", None)
    return isinstance(statement, ast.VariableSetStmt) or (
        relation is not None and relation.relname == "alembic_version"
    )


def _waivers(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    return {match.group(1): match.group(2).strip() for match in _WAIVER.finditer(text)}


def _table(relation: Any) -> str:
    return f"{relation.schemaname}.{relation.relname}" if relation.schemaname else str(relation.relname)
