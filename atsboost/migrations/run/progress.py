"""What a running revision is doing, one log line per event: each statement as it starts.

A long migration used to print "applying X" and then nothing until "applied X in
N s". Each statement the revision sends now logs its kind and table when it starts
(``migration_statement``), with the revision, in plain or JSON logs alike; the lock
watch (``blockers``) logs who a statement waits for, and ``ops.backfill`` each batch.
``atsboost-db`` on a terminal turns these into a live line with a timer
(``atsboost.cli.progress``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, event

logger = logging.getLogger("atsboost.migrations")

# Statements that are not the revision's own work: reads, session settings, transaction control,
# Alembic's own bookkeeping.
_QUIET = ("SELECT", "SHOW", "SET ", "RESET", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
_BOOKKEEPING = ("alembic_version", "atsboost_checksums")
_KIND = re.compile(
    r"(CREATE (?:UNIQUE )?INDEX(?: CONCURRENTLY)?|DROP INDEX(?: CONCURRENTLY)?|INSERT INTO|DELETE FROM"
    r"|(?:CREATE|ALTER|DROP) (?:TABLE|VIEW|SEQUENCE|TYPE|FUNCTION|TRIGGER|SCHEMA|EXTENSION)|\w+)",
    re.IGNORECASE,
)
_NAME = r"((?:\"[^\"]+\"|\w+)(?:\.(?:\"[^\"]+\"|\w+))?)"
# Where a statement names its table, tried in order: the first that matches says.
_TABLE = tuple(
    re.compile(pattern + _NAME, re.IGNORECASE)
    for pattern in (
        r"^(?:UPDATE|INSERT INTO|DELETE FROM|TRUNCATE(?: TABLE)?)(?: ONLY)? ",
        r"^(?:CREATE|DROP) (?:UNIQUE )?(?:INDEX|TRIGGER|RULE|POLICY)\b.*?\bON(?: ONLY)? ",
        r"\bTABLE(?: IF (?:NOT )?EXISTS)?(?: ONLY)? ",
    )
)


def shown(statement: str) -> str | None:
    """Return the statement on one line, or None for one that is not the revision's own work."""
    line = " ".join(statement.split())
    if line.upper().startswith(_QUIET) or any(name in line for name in _BOOKKEEPING):
        return None
    return line


def describe(line: str) -> tuple[str, str | None]:
    """Return a statement's kind (``ALTER TABLE``) and the table it works on, where one is named."""
    kind = _KIND.match(line)
    table = next((found.group(1) for pattern in _TABLE if (found := pattern.search(line))), None)
    return (kind.group(1).upper() if kind else line[:20]), table


class StatementLog:
    """Log each statement a revision sends on ``conn``, as it starts, with the revision's id."""

    def __init__(self, conn: Connection, revision: Callable[[], str | None]) -> None:
        self.conn = conn
        self._revision = revision
        event.listen(conn, "before_cursor_execute", self._starting)

    def close(self) -> None:
        """Stop following the connection."""
        event.remove(self.conn, "before_cursor_execute", self._starting)

    # SQLAlchemy's before_cursor_execute hook, with its arguments as SQLAlchemy passes them
    def _starting(
        self, conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: Any
    ) -> None:
        line = shown(statement)
        if line is None:
            return
        kind, table = describe(line)
        revision = self._revision()
        fields = {"event": "migration_statement", "revision": revision, "statement": kind, "table": table}
        logger.info("%s: %s%s", revision or "migration", kind, f" {table}" if table else "", extra=fields)
