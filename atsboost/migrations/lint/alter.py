"""The rules of ``ALTER TABLE``: each command, and each constraint written inline on a new column.

``ADD COLUMN c int REFERENCES p (id)`` validates like ``ADD CONSTRAINT ...
FOREIGN KEY``, ``ADD COLUMN id bigserial PRIMARY KEY`` fills every row from a
sequence and builds a unique index, so a column's definition is checked like
the ALTER forms it stands for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pglast import ast
from pglast.enums import AlterTableType, ConstrType

from atsboost.migrations.lint.schema import Context, Schema
from atsboost.migrations.lint.types import describe_change, from_node, rewrites

_VOLATILE = frozenset(
    {"random", "gen_random_uuid", "uuid_generate_v4", "clock_timestamp", "timeofday", "nextval"}
)
_SERIAL = frozenset({"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"})
_REWRITES = {
    AlterTableType.AT_SetLogged: "SET LOGGED",
    AlterTableType.AT_SetUnLogged: "SET UNLOGGED",
    AlterTableType.AT_SetTableSpace: "SET TABLESPACE",
    AlterTableType.AT_SetAccessMethod: "SET ACCESS METHOD",
}
Found = Iterator[tuple[str, str, bool]]  # (rule id, detail, certain: the old state was known)


def alter_table(table: str, commands: Iterable[Any], context: Context) -> Found:
    """Yield the rules the commands of one ``ALTER TABLE`` on ``table`` break."""
    schema, validated = context.schema, context.validated_not_null
    for command in commands:
        kind, definition, column = command.subtype, command.def_, str(command.name)
        if kind == AlterTableType.AT_AddColumn and isinstance(definition, ast.ColumnDef):
            yield from _new_column(definition)
        elif kind == AlterTableType.AT_AlterColumnType and isinstance(definition, ast.ColumnDef):
            yield from _retype(schema, table, column, definition)
        elif kind == AlterTableType.AT_SetNotNull and (table, column) not in validated:
            yield from _set_not_null(schema, table, column)
        elif kind == AlterTableType.AT_DropColumn and (table, column) not in schema.new_columns:
            yield "AB010", column, True
        elif kind == AlterTableType.AT_AddConstraint and isinstance(definition, ast.Constraint):
            yield from _constraint(definition)
        elif kind in _REWRITES:
            yield "AB019", _REWRITES[kind], True
        elif kind == AlterTableType.AT_ValidateConstraint and context.validates_in_same_transaction(
            table, column
        ):
            yield "AB007", f"{column}: validated in the transaction that added it, under its lock", True
        elif kind == AlterTableType.AT_DetachPartition and not definition.concurrent:
            yield "AB021", relation_name_of(definition.name), True


def _new_column(definition: Any) -> Found:
    column = str(definition.colname)
    constraints = list(definition.constraints or ())
    kinds = {constraint.contype for constraint in constraints}
    if from_node(definition.typeName).name in _SERIAL:
        yield "AB004", f"{column}: a serial fills every row from a sequence", True
    for constraint in constraints:
        if constraint.contype == ConstrType.CONSTR_DEFAULT and _volatile(constraint.raw_expr):
            yield "AB004", column, True
        elif constraint.contype in (ConstrType.CONSTR_GENERATED, ConstrType.CONSTR_IDENTITY):
            yield "AB012", column, True
        elif constraint.contype in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK):
            yield "AB007", f"{column}, inline", True
        elif constraint.contype in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE):
            yield "AB008", f"{column}, inline", True
    filled = {ConstrType.CONSTR_DEFAULT, ConstrType.CONSTR_IDENTITY, ConstrType.CONSTR_GENERATED}
    serial = from_node(definition.typeName).name in _SERIAL
    if ConstrType.CONSTR_NOTNULL in kinds and not kinds & filled and not serial:
        yield "AB017", column, True


def _set_not_null(schema: Schema, table: str, column: str) -> Found:
    known = schema.column(table, column)
    state = known.not_null if known is not None else None
    if state is None:
        yield "AB006", f"{column} (whether it is NOT NULL already is not known here)", False
    elif not state:
        yield "AB006", column, True


def _retype(schema: Schema, table: str, column: str, definition: Any) -> Found:
    new = from_node(definition.typeName)
    known = schema.column(table, column)
    old = known.type if known is not None else None
    using = _rewriting_using(definition.raw_default, column)
    if old is None or rewrites(old, new, using=using):
        yield (
            "AB005",
            f"{column}: {describe_change(old, new)}{', USING' if using else ''}",
            old is not None or using,
        )


def _rewriting_using(expression: Any, column: str) -> bool:
    """Whether ``USING`` computes new values: not the column itself, or cast to the new type."""
    if isinstance(expression, ast.TypeCast):
        expression = expression.arg
    fields = expression.fields or () if isinstance(expression, ast.ColumnRef) else ()
    plain = bool(fields) and getattr(fields[-1], "sval", None) == column
    return expression is not None and not plain  # ALTER ... TYPE ... USING keeps it as raw_default


def _constraint(constraint: Any) -> Found:
    kind = constraint.contype
    if kind in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK) and not constraint.skip_validation:
        yield "AB007", constraint.conname or "", True
    elif kind in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE) and not constraint.indexname:
        yield "AB008", constraint.conname or "", True
    elif kind == ConstrType.CONSTR_EXCLUSION:
        yield "AB018", constraint.conname or "", True


def _volatile(expression: Any) -> bool:
    names = (expression.funcname or ()) if isinstance(expression, ast.FuncCall) else ()
    return bool(names) and names[-1].sval in _VOLATILE


def relation_name_of(relation: Any) -> str:
    """Return a partition's name for the finding's detail."""
    return f"partition {relation.relname}" if relation is not None else "a partition"
