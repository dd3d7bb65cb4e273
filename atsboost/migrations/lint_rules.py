"""The lint's rules: statements that lock a live table for long, rewrite it, or lose data.

Each rule has an id, a severity, the lock it takes, and the safe recipe. The
statements come parsed by PostgreSQL's own parser (pglast, the libpg_query
binding), so a rule sees what the server will see, not a guess from text.
Tables created in the same revision are exempt from the lock rules: nobody else
uses them yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType

from atsboost.migrations.lint_catalogue import RULES, Rule

_VOLATILE = frozenset(
    {"random", "gen_random_uuid", "uuid_generate_v4", "clock_timestamp", "timeofday", "nextval"}
)


@dataclass(frozen=True)
class Context:
    """What a rule may need to know beyond the statement itself."""

    in_transaction: bool
    # (table, column) pairs with a validated CHECK (col IS NOT NULL) earlier in the revision
    validated_not_null: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Hit:
    """A rule that a statement breaks, and on which table."""

    rule: Rule
    table: str


def check(statement: Any, context: Context, *, new_tables: set[str]) -> list[Hit]:
    """Return the rules ``statement`` breaks; tables created in the same revision skip the lock rules."""
    hits = []
    for rule_id, table in _findings(statement, context):
        rule = RULES[rule_id]
        if not (rule.exempt_if_new and table in new_tables):
            hits.append(Hit(rule, table))
    return hits


def _findings(statement: Any, context: Context) -> Iterator[tuple[str, str]]:
    checker = _CHECKERS.get(type(statement))
    if checker is not None:
        yield from checker(statement, context)


def _index(statement: ast.IndexStmt, context: Context) -> Iterator[tuple[str, str]]:
    table = _name(statement.relation)
    if not statement.concurrent:
        yield "AB001", table
    elif context.in_transaction:
        yield "AB002", table


def _drop(statement: ast.DropStmt, context: Context) -> Iterator[tuple[str, str]]:
    names = [".".join(part.sval for part in obj) for obj in statement.objects or ()]
    if statement.removeType == ObjectType.OBJECT_INDEX:
        for name in names:
            if not statement.concurrent:
                yield "AB003", name
            elif context.in_transaction:
                yield "AB002", name
    elif statement.removeType == ObjectType.OBJECT_TABLE:
        for name in names:
            yield "AB010", name


def _alter(statement: ast.AlterTableStmt, context: Context) -> Iterator[tuple[str, str]]:
    table = _name(statement.relation)
    for command in statement.cmds or ():
        if (
            command.subtype == AlterTableType.AT_SetNotNull
            and (table, command.name) in context.validated_not_null
        ):
            continue  # PostgreSQL 12+ trusts the validated CHECK and skips the scan
        for rule_id in _alter_command(command):
            yield rule_id, table


def _alter_command(command: ast.AlterTableCmd) -> Iterator[str]:
    kind, definition = command.subtype, command.def_
    if kind == AlterTableType.AT_AddColumn and isinstance(definition, ast.ColumnDef):
        for constraint in definition.constraints or ():
            if constraint.contype == ConstrType.CONSTR_DEFAULT and _volatile(constraint.raw_expr):
                yield "AB004"
            if constraint.contype == ConstrType.CONSTR_GENERATED:
                yield "AB012"
    elif kind == AlterTableType.AT_AlterColumnType:
        yield "AB005"
    elif kind == AlterTableType.AT_SetNotNull:
        yield "AB006"
    elif kind == AlterTableType.AT_DropColumn:
        yield "AB010"
    elif kind == AlterTableType.AT_AddConstraint and isinstance(definition, ast.Constraint):
        yield from _constraint(definition)


def _constraint(constraint: ast.Constraint) -> Iterator[str]:
    if constraint.contype in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK):
        if not constraint.skip_validation:
            yield "AB007"
    elif (
        constraint.contype in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE)
        and not constraint.indexname
    ):
        yield "AB008"


def _rename(statement: ast.RenameStmt, context: Context) -> Iterator[tuple[str, str]]:
    if statement.renameType in (ObjectType.OBJECT_COLUMN, ObjectType.OBJECT_TABLE) and statement.relation:
        yield "AB009", _name(statement.relation)


def _whole_table(statement: Any, context: Context) -> Iterator[tuple[str, str]]:
    if statement.whereClause is None:
        yield "AB011", _name(statement.relation)


def _maintenance(statement: Any, context: Context) -> Iterator[tuple[str, str]]:
    options = {
        option.defname
        for option in getattr(statement, "options", None) or getattr(statement, "params", None) or ()
    }
    if isinstance(statement, ast.VacuumStmt) and "full" not in options:
        return
    if isinstance(statement, ast.ReindexStmt) and "concurrently" in options:
        return
    relation = getattr(statement, "relation", None)
    yield "AB013", _name(relation) if relation is not None else "(database)"


def _enum(statement: ast.AlterEnumStmt, context: Context) -> Iterator[tuple[str, str]]:
    if context.in_transaction and statement.newVal:
        yield "AB014", ".".join(part.sval for part in statement.typeName or ())


def _truncate(statement: ast.TruncateStmt, context: Context) -> Iterator[tuple[str, str]]:
    for relation in statement.relations or ():
        yield "AB015", _name(relation)


_CHECKERS: dict[type, Callable[[Any, Context], Iterator[tuple[str, str]]]] = {
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
}


def validated_not_null(statements: list[Any]) -> frozenset[tuple[str, str]]:
    """Find (table, column) pairs given a CHECK (column IS NOT NULL) that is then validated."""
    checks: dict[str, tuple[str, str]] = {}
    validated = set()
    for statement in statements:
        if not isinstance(statement, ast.AlterTableStmt):
            continue
        table = _name(statement.relation)
        for command in statement.cmds or ():
            definition = command.def_
            if command.subtype == AlterTableType.AT_AddConstraint and _not_null_check(definition):
                checks[definition.conname] = (table, definition.raw_expr.arg.fields[-1].sval)
            elif command.subtype == AlterTableType.AT_ValidateConstraint and command.name in checks:
                validated.add(checks[command.name])
    return frozenset(validated)


def _not_null_check(definition: Any) -> bool:
    expression = getattr(definition, "raw_expr", None)
    return (
        isinstance(definition, ast.Constraint)
        and definition.contype == ConstrType.CONSTR_CHECK
        and isinstance(expression, ast.NullTest)
        and expression.nulltesttype == 1  # IS NOT NULL
        and isinstance(expression.arg, ast.ColumnRef)
    )


def _volatile(expression: Any) -> bool:
    names = (expression.funcname or ()) if isinstance(expression, ast.FuncCall) else ()
    return bool(names) and names[-1].sval in _VOLATILE


def _name(relation: Any) -> str:
    return f"{relation.schemaname}.{relation.relname}" if relation.schemaname else str(relation.relname)
