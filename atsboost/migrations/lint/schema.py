"""The schema the linted statements build, so a rule knows what a statement changes.

Revisions linted from base describe every table they touch: a column's type
and whether it is NOT NULL, which table an index is on, what a revision creates
(and so may lock, rewrite or drop freely). What the statements do not say is
read from the database's catalog when the lint has a connection, and is
otherwise unknown, which keeps a rule's verdict on the safe side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType
from sqlalchemy import Connection, text

from atsboost.migrations.lint.types import Type, from_catalog, from_node

_COLUMN = text(
    "SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
    "WHERE attrelid = to_regclass(:table) AND attname = :column AND attnum > 0 AND NOT attisdropped"
)
_INDEX = text("SELECT indrelid::regclass::text FROM pg_index WHERE indexrelid = to_regclass(:name)")


@dataclass(frozen=True)
class Column:
    """What the lint knows of a column."""

    type: Type | None
    not_null: bool | None  # None: not known (a type changed on a column known from nowhere else)
    from_catalog: bool = False


@dataclass
class Schema:
    """Tables, columns and indexes as the statements so far leave them; ``new`` is what they created."""

    catalog: Connection | None = None
    columns: dict[tuple[str, str], Column | None] = field(default_factory=dict)
    indexes: dict[str, str | None] = field(default_factory=dict)  # index -> its table
    new: set[str] = field(default_factory=set)  # tables and indexes created in the scope being linted
    new_columns: set[tuple[str, str]] = field(default_factory=set)
    consulted: list[str] = field(default_factory=list)  # what was read from the catalog, for the report

    def column(self, table: str, name: str) -> Column | None:
        """Return the column as known: from the statements, else from the catalog, else None."""
        key = (table, name)
        if key not in self.columns:
            self.columns[key] = self._catalog_column(table, name)
        return self.columns[key]

    def table_of(self, index: str) -> str | None:
        """Return the table ``index`` is on, when known."""
        if index not in self.indexes:
            found = self.catalog.execute(_INDEX, {"name": index}).scalar() if self.catalog else None
            self.indexes[index] = found
        return self.indexes[index]

    def is_new(self, *names: str) -> bool:
        """Whether any of ``names`` (a table, an index) was created in the scope being linted."""
        return any(name in self.new for name in names)

    def start_scope(self) -> None:
        """Begin a new revision: what earlier ones created is now in use."""
        self.new.clear()
        self.new_columns.clear()

    def apply(self, node: Any) -> None:
        """Record what ``node`` creates, changes or drops."""
        if isinstance(node, ast.CreateStmt):
            self._create(relation_name(node.relation), node.tableElts or ())
        elif isinstance(node, ast.CreateTableAsStmt) and node.into is not None:
            self.new.add(relation_name(node.into.rel))
        elif isinstance(node, ast.SelectStmt) and node.intoClause is not None:
            self.new.add(relation_name(node.intoClause.rel))
        elif isinstance(node, ast.IndexStmt) and node.idxname:
            schema = getattr(node.relation, "schemaname", None)
            index = f"{schema}.{node.idxname}" if schema else node.idxname
            self.indexes[index] = relation_name(node.relation)
            self.new.add(index)
        elif isinstance(node, ast.AlterTableStmt):
            self._alter(relation_name(node.relation), node.cmds or ())
        elif isinstance(node, ast.RenameStmt) and node.renameType == ObjectType.OBJECT_INDEX:
            old = relation_name(node.relation)
            self.indexes[str(node.newname)] = self.table_of(old)
        elif isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_TABLE:
            for table in (".".join(part.sval for part in obj) for obj in node.objects or ()):
                self.columns = {key: c for key, c in self.columns.items() if key[0] != table}

    def _create(self, table: str, elements: Iterable[Any]) -> None:
        self.new.add(table)
        keys = _primary_key_columns(elements)
        for element in elements:
            if isinstance(element, ast.ColumnDef):
                self._define(table, element, not_null=element.colname in keys)
                self._constraint_indexes(table, element.constraints or ())
        self._constraint_indexes(table, [e for e in elements if isinstance(e, ast.Constraint)])

    def _constraint_indexes(self, table: str, constraints: Iterable[Any]) -> None:
        """Record the index that a named PRIMARY KEY, UNIQUE or EXCLUDE constraint builds."""
        kinds = (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_EXCLUSION)
        for constraint in constraints:
            if constraint.contype in kinds and constraint.conname:
                self.indexes[str(constraint.conname)] = table

    def _define(self, table: str, definition: Any, *, not_null: bool = False) -> None:
        kinds = {c.contype for c in definition.constraints or ()}
        not_null = not_null or bool(kinds & {ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_PRIMARY})
        self.columns[(table, definition.colname)] = Column(from_node(definition.typeName), not_null)

    def _alter(self, table: str, commands: Iterable[Any]) -> None:
        for command in commands:
            kind, key = command.subtype, (table, str(command.name))
            if kind == AlterTableType.AT_AddConstraint and isinstance(command.def_, ast.Constraint):
                self._constraint_indexes(table, [command.def_])
            elif kind == AlterTableType.AT_AddColumn and isinstance(command.def_, ast.ColumnDef):
                self._define(table, command.def_)
                self.new_columns.add((table, str(command.def_.colname)))
            elif kind == AlterTableType.AT_AlterColumnType and isinstance(command.def_, ast.ColumnDef):
                known = self.column(*key)
                self.columns[key] = Column(
                    from_node(command.def_.typeName), known.not_null if known else None
                )
            elif kind in (AlterTableType.AT_SetNotNull, AlterTableType.AT_DropNotNull):
                known = self.column(*key)
                not_null = kind == AlterTableType.AT_SetNotNull
                self.columns[key] = Column(known.type if known else None, not_null)
            elif kind == AlterTableType.AT_DropColumn:
                self.columns[key] = None

    def _catalog_column(self, table: str, name: str) -> Column | None:
        if self.catalog is None:
            return None
        row = self.catalog.execute(_COLUMN, {"table": table, "column": name}).first()
        if row is None:
            return None
        self.consulted.append(f"{table}.{name}: {row[0]}{' NOT NULL' if row[1] else ''}")
        return Column(from_catalog(row[0]), bool(row[1]), from_catalog=True)


@dataclass(frozen=True)
class Context:
    """What a rule may need to know beyond the statement itself."""

    in_transaction: bool
    # (table, column) pairs with a validated CHECK (col IS NOT NULL) earlier in the revision
    validated_not_null: frozenset[tuple[str, str]] = frozenset()
    schema: Schema = field(default_factory=lambda: Schema())
    transaction: int = 0  # which transaction of the revision the statement runs in
    # (table, constraint) added NOT VALID, and the transaction that adds it
    not_valid: dict[tuple[str, str], int] = field(default_factory=dict)

    def validates_in_same_transaction(self, table: str, constraint: str) -> bool:
        """Whether VALIDATE runs while the lock of the ADD ... NOT VALID is still held."""
        return self.in_transaction and self.not_valid.get((table, constraint)) == self.transaction


def _primary_key_columns(elements: Iterable[Any]) -> set[str]:
    keys = set()
    for element in elements:
        if isinstance(element, ast.Constraint) and element.contype == ConstrType.CONSTR_PRIMARY:
            keys |= {key.sval for key in element.keys or ()}
    return keys


def relation_name(relation: Any) -> str:
    """Return ``schema.table`` as the statement names it, or ``table``."""
    return f"{relation.schemaname}.{relation.relname}" if relation.schemaname else str(relation.relname)
