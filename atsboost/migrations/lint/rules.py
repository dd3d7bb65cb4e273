"""The lint's rules: statements that lock a live table for long, rewrite it, or lose data.

The statements come parsed by PostgreSQL's own parser (pglast, the libpg_query
binding), so a rule sees what the server will see, not a guess from text.
Tables and indexes created in the same revision are exempt from the lock rules
and may be dropped again: nobody else uses them yet. ``ALTER TABLE`` has its
own module, ``alter``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType

from atsboost.migrations.lint.alter import alter_table
from atsboost.migrations.lint.catalogue import RULES, WARNING, Rule
from atsboost.migrations.lint.schema import Context, relation_name


@dataclass(frozen=True)
class Hit:
    """A rule that a statement breaks, on which table, and what the rule found there."""

    rule: Rule
    table: str
    detail: str = ""
    # a warning when the verdict turns on what is not known here (an old type); empty: the rule's own
    severity: str = ""
    subject: str = ""  # the index a finding is about, when its table is not known


def check(statement: Any, context: Context) -> list[Hit]:
    """Return the rules ``statement`` breaks; what the revision created skips the lock rules."""
    hits = []
    checker = _CHECKERS.get(type(statement))
    for rule_id, table, detail, certain, subject in checker(statement, context) if checker else ():
        rule = RULES[rule_id]
        if not (rule.exempt_if_new and context.schema.is_new(table)):
            hits.append(Hit(rule, table, detail, "" if certain else WARNING, subject))
    return hits


# (rule id, table, detail, certain, subject: the index a finding on an unknown table is about)
Found = Iterator[tuple[str, str, str, bool, str]]


def _index(statement: ast.IndexStmt, context: Context) -> Found:
    table = relation_name(statement.relation)
    if not statement.concurrent:
        yield "AB001", table, "", True, ""
    elif context.in_transaction:
        yield "AB002", table, "", True, ""


def _drop(statement: ast.DropStmt, context: Context) -> Found:
    names = [".".join(part.sval for part in obj) for obj in statement.objects or ()]
    if statement.removeType == ObjectType.OBJECT_INDEX:
        for name in names:
            if context.schema.is_new(name):
                continue  # built in this revision: no one uses it yet
            table = context.schema.table_of(name)
            detail = f"index {name}" if table else f"index {name}, on a table not known here"
            if not statement.concurrent:
                yield "AB003", table or "", detail, True, name
            elif context.in_transaction:
                yield "AB002", table or "", detail, True, name
    elif statement.removeType == ObjectType.OBJECT_TABLE:
        for name in names:
            yield "AB010", name, "", True, ""


def _rename(statement: ast.RenameStmt, context: Context) -> Found:
    kind = statement.renameType
    if kind in (ObjectType.OBJECT_COLUMN, ObjectType.OBJECT_TABLE) and statement.relation:
        table = relation_name(statement.relation)
        if (table, statement.subname) not in context.schema.new_columns:
            yield "AB009", table, statement.subname or "", True, ""
    elif kind == ObjectType.OBJECT_SCHEMA:
        yield "AB009", f"schema {statement.subname}", "", True, ""


def _whole_table(statement: Any, context: Context) -> Found:
    if statement.whereClause is None or _joins_only(statement.whereClause):
        yield "AB011", relation_name(statement.relation), "", True, ""


def _joins_only(where: Any) -> bool:
    """Whether a WHERE only joins tables (``a.id = b.a_id``): it still touches every row."""
    if isinstance(where, ast.BoolExpr):
        return all(_joins_only(arg) for arg in where.args or ())
    return (
        isinstance(where, ast.A_Expr)
        and isinstance(where.lexpr, ast.ColumnRef)
        and isinstance(where.rexpr, ast.ColumnRef)
        and len(where.lexpr.fields or ()) > 1
        and len(where.rexpr.fields or ()) > 1
    )


def _maintenance(statement: Any, context: Context) -> Found:
    options = {
        option.defname
        for option in getattr(statement, "options", None) or getattr(statement, "params", None) or ()
    }
    if isinstance(statement, ast.VacuumStmt):
        if "full" not in options:
            return
        for relation in statement.rels or ():
            yield "AB013", relation_name(relation.relation), "", True, ""
        if not statement.rels:
            yield "AB013", "(database)", "", True, ""
        return
    if isinstance(statement, ast.ReindexStmt) and "concurrently" in options:
        return
    relation = getattr(statement, "relation", None)
    yield "AB013", relation_name(relation) if relation is not None else "(database)", "", True, ""


def _enum(statement: ast.AlterEnumStmt, context: Context) -> Found:
    name = ".".join(part.sval for part in statement.typeName or ())
    if statement.oldVal:
        yield "AB009", f"type {name}", f"value {statement.oldVal}", True, ""
    elif context.in_transaction and statement.newVal:
        yield "AB014", name, "", True, ""


def _truncate(statement: ast.TruncateStmt, context: Context) -> Found:
    for relation in statement.relations or ():
        yield "AB015", relation_name(relation), "", True, ""


def _drop_database(statement: ast.DropdbStmt, context: Context) -> Found:
    yield "AB010", f"database {statement.dbname}", "", True, ""


def _alter(statement: ast.AlterTableStmt, context: Context) -> Found:
    if statement.objtype != ObjectType.OBJECT_TABLE:
        return
    table = relation_name(statement.relation)
    for rule_id, detail, certain in alter_table(table, statement.cmds or (), context):
        yield rule_id, table, detail, certain, ""


_CHECKERS: dict[type, Callable[[Any, Context], Found]] = {
    ast.IndexStmt: _index,
    ast.DropStmt: _drop,
    ast.AlterTableStmt: _alter,
    ast.RenameStmt: _rename,
    ast.UpdateStmt: _whole_table,
    ast.DeleteStmt: _whole_table,
    ast.VacuumStmt: _maintenance,
    ast.ClusterStmt: _maintenance,
    ast.ReindexStmt: _maintenance,
    ast.AlterEnumStmt: _enum,
    ast.TruncateStmt: _truncate,
    ast.DropdbStmt: _drop_database,
}


def validated_not_null(statements: list[Any]) -> frozenset[tuple[str, str]]:
    """Find (table, column) pairs given a CHECK (column IS NOT NULL) that is then validated."""
    checks: dict[str, tuple[str, str]] = {}
    validated = set()
    for statement in statements:
        if not isinstance(statement, ast.AlterTableStmt):
            continue
        table = relation_name(statement.relation)
        for command in statement.cmds or ():
            definition = command.def_
            if command.subtype == AlterTableType.AT_AddConstraint and _not_null_check(definition):
                checks[definition.conname] = (table, definition.raw_expr.arg.fields[-1].sval)
            elif command.subtype == AlterTableType.AT_ValidateConstraint and command.name in checks:
                validated.add(checks[command.name])
    return frozenset(validated)


def added_not_valid(statements: list[tuple[Any, int]]) -> dict[tuple[str, str], int]:
    """Map (table, constraint) added NOT VALID to the transaction that adds it, for (node, transaction)."""
    added = {}
    for node, transaction in statements:
        if isinstance(node, ast.AlterTableStmt):
            for command in node.cmds or ():
                definition = command.def_
                if isinstance(definition, ast.Constraint) and definition.skip_validation:
                    added[(relation_name(node.relation), str(definition.conname))] = transaction
    return added


def _not_null_check(definition: Any) -> bool:
    expression = getattr(definition, "raw_expr", None)
    return (
        isinstance(definition, ast.Constraint)
        and definition.contype == ConstrType.CONSTR_CHECK
        and isinstance(expression, ast.NullTest)
        and expression.nulltesttype == 1  # IS NOT NULL
        and isinstance(expression.arg, ast.ColumnRef)
    )
