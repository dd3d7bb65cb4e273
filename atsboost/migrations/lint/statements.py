"""A revision's rendered SQL as statements, parsed by PostgreSQL's own parser (pglast).

A ``DO`` block's PL/pgSQL is parsed too (by PostgreSQL's PL/pgSQL parser), so the
static SQL inside it is checked like any other statement; what it builds at run
time (``EXECUTE``) cannot be, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alembic.script import Script
from pglast import ast, parse_plpgsql, parse_sql
from pglast.parser import ParseError

from atsboost.errors import MigrationError


@dataclass(frozen=True)
class Statement:
    """One statement of a revision's SQL: its parse tree, its text, and whether a transaction wraps it."""

    node: Any
    text: str
    in_transaction: bool
    inner: tuple[Any, ...] = ()  # a DO block's static statements, parsed
    dynamic: bool = False  # a DO block that builds SQL at run time, or is not PL/pgSQL
    transaction: int = 0  # counts the revision's transactions: statements in one share their locks

    @property
    def checked(self) -> tuple[Any, ...]:
        """The parse trees the rules check: a DO block's statements, or the statement itself."""
        return self.inner if isinstance(self.node, ast.DoStmt) else (self.node,)


def statements(sql: str, script: Script) -> list[Statement]:
    """Parse a revision's rendered SQL into its statements, without Alembic's bookkeeping and SETs."""
    try:
        parsed = parse_sql(sql)
    except ParseError as exc:
        raise MigrationError(
            f"revision {script.revision}: its SQL does not parse ({exc}); fix the revision"
        ) from None
    found, in_transaction, transaction = [], False, 0
    for raw in parsed:
        node = raw.stmt
        if isinstance(node, ast.TransactionStmt):
            kind = node.kind.name if node.kind is not None else ""
            in_transaction = kind.endswith(("BEGIN", "START"))
            transaction += in_transaction
        elif not _bookkeeping(node):
            start = raw.stmt_location or 0
            end = start + raw.stmt_len if raw.stmt_len else len(sql)
            inner, dynamic = _do_block(node) if isinstance(node, ast.DoStmt) else ((), False)
            text = sql[start:end].strip()
            found.append(Statement(node, text, in_transaction, inner, dynamic, transaction))
    return found


def _do_block(node: ast.DoStmt) -> tuple[tuple[Any, ...], bool]:
    """Return a DO block's static statements, and whether it also runs SQL that cannot be read."""
    options = {option.defname: option.arg.sval for option in node.args or ()}
    if options.get("language", "plpgsql") != "plpgsql":
        return (), True
    function = f"CREATE FUNCTION lint() RETURNS void LANGUAGE plpgsql AS $lint${options['as']}$lint$"
    try:
        tree = parse_plpgsql(function)
    except ParseError:
        return (), True
    queries: list[str] = []
    dynamic = _walk(tree, queries)
    inner: list[Any] = []
    for query in queries:
        try:
            inner += [raw.stmt for raw in parse_sql(query)]
        except ParseError:
            dynamic = True
    return tuple(inner), dynamic


def _walk(tree: Any, queries: list[str]) -> bool:
    """Collect the static SQL of a PL/pgSQL tree into ``queries``; return whether any is dynamic."""
    dynamic = False
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "PLpgSQL_stmt_execsql":
                queries.append(value["sqlstmt"]["PLpgSQL_expr"]["query"])
            elif key in ("PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors"):
                dynamic = True
            else:
                dynamic |= _walk(value, queries)
    elif isinstance(tree, list):
        for item in tree:
            dynamic |= _walk(item, queries)
    return dynamic


def _bookkeeping(statement: Any) -> bool:
    """Alembic's own version table, and the session settings every run starts with."""
    relation = getattr(statement, "relation", None)
    return isinstance(statement, ast.VariableSetStmt) or (
        relation is not None and relation.relname == "alembic_version"
    )
