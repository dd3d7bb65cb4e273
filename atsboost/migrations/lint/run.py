"""The walk over the revisions: render each one's SQL, check its statements, collect the findings."""

from __future__ import annotations

import re
from pathlib import Path

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, text

from atsboost.config.settings import Settings
from atsboost.errors import MigrationError, RevisionNotRenderableError
from atsboost.migrations.lint.catalogue import DYNAMIC, RULES, SQL_RULES, UNRENDERED
from atsboost.migrations.lint.report import Finding, LintReport
from atsboost.migrations.lint.rules import Hit, added_not_valid, check, validated_not_null
from atsboost.migrations.lint.schema import Context, Schema
from atsboost.migrations.lint.statements import statements
from atsboost.migrations.project import alembic_config, script_directory
from atsboost.migrations.run.options import MigrationOptions
from atsboost.migrations.run.rendering import render

_WAIVER = re.compile(r"#\s*atsboost:\s*allow\s+(AB\d{3})\s+--\s*(\S.*)")

# Whether a finding's relation exists, and the table whose rows count: its own, or an index's table.
_TABLE_OF = text(
    "SELECT to_regclass(:name) IS NOT NULL, (SELECT coalesce(i.indrelid, c.oid)::regclass::text "
    "FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid "
    "WHERE c.oid = to_regclass(:name) AND c.relkind IN ('r', 'p', 'm', 'i', 'I'))"
)


def lint(
    settings: Settings | None = None,
    *,
    revisions: list[str] | None = None,
    span: str | None = None,
    one_run: bool = False,
    catalog: Connection | None = None,
) -> LintReport:
    """Lint the given revisions (ids), or those in ``span`` ('A:B'), or every revision from base.

    ``one_run``: the revisions are applied together, in this order (a pending plan),
    so a table an earlier one creates is as new to the later ones as to itself.
    A revision that cannot be rendered offline is a finding of its own (AB016).
    ``catalog``: a connection to the database the revisions will run on, whose
    catalog tells what the statements do not (a column's type, an index's table);
    what was read is listed in ``LintReport.consulted``.
    """
    config = alembic_config(settings, MigrationOptions("lint", settings=settings))
    scripts = script_directory(config)
    chosen = revisions if revisions is not None else in_range(scripts, span or "base:heads")
    report = LintReport(revisions=chosen)
    schema = Schema(catalog)
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
        if not one_run:
            schema.start_scope()
        report.findings += _lint_revision(report.rendered[revision], script, schema)
    report.consulted = schema.consulted
    return report


def unused_at_start(conn: Connection, names: set[str]) -> tuple[set[str], set[str]]:
    """Return which of ``names`` (tables, indexes) do not exist yet, and which hold no row, as a run starts.

    What does not exist is created by the run itself, maybe by a revision that
    cannot be rendered: as new as what the linted SQL creates. An empty table
    makes nobody wait on its locks. Each check reads one row at most.
    """
    absent, empty = set(), set()
    for name in names:
        exists, table = conn.execute(_TABLE_OF, {"name": name}).one()
        if not exists:
            absent.add(name)
        elif table is not None and not conn.execute(text(f"SELECT EXISTS (SELECT FROM {table})")).scalar():
            empty.add(name)
    conn.rollback()
    return absent, empty


def _unrendered(script: Script, reason: str) -> Finding:
    rule = RULES[UNRENDERED]
    problem = f"its {rule.problem} ({reason})"
    args = (script.revision, rule.id, rule.severity, "", problem, rule.lock, rule.recipe)
    return Finding(*args, _waivers(Path(script.path)).get(rule.id), unchecked=SQL_RULES)


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


def _lint_revision(sql: str, script: Script, schema: Schema) -> list[Finding]:
    """Return the revision's findings; ``schema`` follows its statements."""
    parsed = statements(sql, script)
    validated = validated_not_null([node for s in parsed for node in s.checked])
    not_valid = added_not_valid([(node, s.transaction) for s in parsed for node in s.checked])
    waivers = _waivers(Path(script.path))
    findings = []
    for statement in parsed:
        hits = [Hit(RULES[DYNAMIC], "")] if statement.dynamic else []
        for node in statement.checked:
            context = Context(statement.in_transaction, validated, schema, statement.transaction, not_valid)
            hits += check(node, context)
            schema.apply(node)
        for hit in hits:
            rule = hit.rule
            unchecked = SQL_RULES if rule.id == DYNAMIC else ()
            severity = hit.severity or rule.severity
            args = (script.revision, rule.id, severity, hit.table, rule.problem, rule.lock, rule.recipe)
            findings.append(Finding(*args, waivers.get(rule.id), unchecked, hit.detail, hit.subject))
    return findings


def _waivers(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    return {match.group(1): match.group(2).strip() for match in _WAIVER.finditer(text)}
