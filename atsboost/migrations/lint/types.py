"""Which column type changes rewrite the table, by PostgreSQL's own rules.

``ALTER COLUMN ... TYPE`` keeps the table's files when the old values are
valid in the new type as they are (``ATColumnChangeRequiresRewrite`` in
PostgreSQL's ``tablecmds.c``): the same type with a wider or no limit
(varchar, varbit, numeric's precision at the same scale, the precision of
timestamp, time and interval), or a binary-coercible cast (varchar to text,
cidr to inet, xml to text). Anything else, or a ``USING`` expression, rewrites.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pglast import ast, parse_sql
from pglast.parser import ParseError

# Casts that relabel the bytes: (from, to), with the target's limit absent or not narrower.
_BINARY_COERCIBLE = {("varchar", "text"), ("text", "varchar"), ("cidr", "inet"), ("xml", "text")}
# Types whose limit may grow without a rewrite; numeric's second modifier (the scale) must stay.
_WIDENING = {"varchar", "varbit", "numeric", "timestamp", "timestamptz", "time", "timetz", "interval"}


@dataclass(frozen=True)
class Type:
    """A column type as the server knows it: its name and its modifiers (a length, a precision)."""

    name: str
    modifiers: tuple[int, ...] = ()
    array: bool = False

    def __str__(self) -> str:
        mods = f"({','.join(map(str, self.modifiers))})" if self.modifiers else ""
        return f"{self.name}{mods}{'[]' if self.array else ''}"


def from_node(node: Any) -> Type:
    """Read a type from its parse tree (``pg_catalog.varchar`` with ``(255)``)."""
    name = node.names[-1].sval
    constants: list[Any] = [mod.val for mod in node.typmods or () if isinstance(mod, ast.A_Const)]
    modifiers = tuple(
        value.ival for value in constants if isinstance(value, ast.Integer) and value.ival is not None
    )
    return Type(name, modifiers, bool(node.arrayBounds))  # the parser already says int4, varchar, float8


def from_catalog(formatted: str) -> Type | None:
    """Read a type as ``format_type()`` prints it (``character varying(255)``), by parsing a cast to it."""
    try:
        [raw] = parse_sql(f"SELECT NULL::{formatted}")
    except ParseError:
        return None
    statement: Any = raw.stmt
    target = statement.targetList[0].val
    return from_node(target.typeName) if isinstance(target, ast.TypeCast) else None


def rewrites(old: Type, new: Type, *, using: bool) -> bool:
    """Whether changing a column from ``old`` to ``new`` rewrites the table."""
    if using or old.array != new.array:
        return True
    if old.name == new.name:
        return not _not_narrower(old, new)
    if (old.name, new.name) in _BINARY_COERCIBLE:
        return bool(new.modifiers)  # text to varchar(n) must check every value's length
    return True


def _not_narrower(old: Type, new: Type) -> bool:
    if old.modifiers == new.modifiers or not new.modifiers:
        return True
    if old.name not in _WIDENING or not old.modifiers:
        return False  # from no limit to a limit: every value is checked
    if old.name == "numeric":
        old_scale = old.modifiers[1] if len(old.modifiers) > 1 else 0
        new_scale = new.modifiers[1] if len(new.modifiers) > 1 else 0
        return new_scale == old_scale and new.modifiers[0] >= old.modifiers[0]
    return new.modifiers[0] >= old.modifiers[0]


def describe_change(old: Type | None, new: Type) -> str:
    """Say what changes (``int4 to int8``), or just the new type when the old one is not known."""
    return f"{old} to {new}" if old is not None else f"to {new} (the old type is not known here)"
