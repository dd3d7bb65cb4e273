"""Helpers for writing revisions that are safe on a live database.

``CREATE INDEX CONCURRENTLY`` builds an index without blocking writes, but it
cannot run in a transaction, and when it fails it leaves an INVALID index behind
that ``IF NOT EXISTS`` would then silently keep. These helpers run in Alembic's
``autocommit_block`` and rebuild such a leftover, so re-running a revision repairs
a failed build.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from alembic import op
from sqlalchemy import text

logger = logging.getLogger("atsboost.migrations")


def create_index_concurrently(name: str, table: str, columns: Sequence[Any], **kw: Any) -> None:
    """Create an index without blocking writes; rebuild it if a failed build left it INVALID."""
    with op.get_context().autocommit_block():
        if is_invalid_index(name):
            logger.warning("index %s is INVALID (a failed concurrent build): rebuilding it", name)
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
        op.create_index(name, table, columns, postgresql_concurrently=True, if_not_exists=True, **kw)


def drop_index_concurrently(name: str, table: str) -> None:
    """Drop an index without blocking writes."""
    with op.get_context().autocommit_block():
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)


def is_invalid_index(name: str) -> bool:
    """Tell whether index ``name`` exists but is INVALID; always False in offline (--sql) mode."""
    if op.get_context().as_sql:
        return False
    row = (
        op.get_bind()
        .execute(
            text(
                "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :name AND pg_catalog.pg_table_is_visible(c.oid)"
            ),
            {"name": name},
        )
        .first()
    )
    return bool(row and row[0])


def add_constraint_safely(table: str, name: str, definition: str) -> None:
    """Add a FOREIGN KEY or CHECK without blocking writes while every row is checked.

    ``ADD CONSTRAINT ... NOT VALID`` takes its lock for an instant; once that is
    committed, ``VALIDATE CONSTRAINT`` checks the rows under SHARE UPDATE EXCLUSIVE,
    which lets reads and writes go on. Re-running skips a constraint that exists.
    """
    if not _constraint_exists(table, name):
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition} NOT VALID")
    with op.get_context().autocommit_block():  # commit the ADD: its lock must not last through the scan
        op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def set_not_null_safely(table: str, column: str) -> None:
    """SET NOT NULL without a scan under an exclusive lock: through a validated CHECK, then dropped."""
    check = f"{table}_{column}_not_null"
    add_constraint_safely(table, check, f"CHECK ({column} IS NOT NULL)")
    op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL")  # trusts the check: no scan
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {check}")


def add_unique_safely(table: str, name: str, columns: Sequence[str], *, primary_key: bool = False) -> None:
    """Add a UNIQUE (or PRIMARY KEY) constraint on an index built concurrently, not under a lock."""
    create_index_concurrently(name, table, list(columns), unique=True)
    if not _constraint_exists(table, name):
        kind = "PRIMARY KEY" if primary_key else "UNIQUE"
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {kind} USING INDEX {name}")


def backfill(table: str, assignments: str, where: str, *, batch_size: int = 1000) -> int:
    """Update the rows matching ``where`` in batches that commit one by one; return how many changed.

    ``where`` must stop matching a row once it is updated (``col IS NULL``, say): then
    each batch is short, no lock is held for long, and a run that stopped is resumed
    by running it again. Each batch logs the rows done, of how many, the rate and the
    time left. Offline (``--sql``) the batch statement is written once.
    """
    batch = (
        f"UPDATE {table} SET {assignments} WHERE ctid IN "
        f"(SELECT ctid FROM {table} WHERE {where} LIMIT {int(batch_size)})"
    )
    if op.get_context().as_sql:
        op.execute(f"-- repeat until it updates no row:\n{batch}")
        return 0
    with op.get_context().autocommit_block():
        todo = op.get_bind().execute(text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one()
        progress = BackfillProgress(table, todo)
        while changed := op.get_bind().execute(text(batch)).rowcount:
            progress.done(changed)
    return progress.rows


class BackfillProgress:
    """Log a backfill's batches: rows done of how many, the rate, the time left."""

    def __init__(self, table: str, todo: int) -> None:
        self.table, self.todo, self.rows = table, todo, 0
        self._started = time.monotonic()

    def done(self, rows: int) -> None:
        """Count a batch that committed ``rows`` rows, and say where the backfill stands."""
        self.rows += rows
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = self.rows / elapsed
        left = max(self.todo - self.rows, 0) / rate if rate else 0.0
        share = self.rows / self.todo if self.todo else 1.0
        fields = {
            "event": "backfill_progress",
            "table": self.table,
            "rows": self.rows,
            "rows_total": self.todo,
            "rows_per_second": round(rate, 1),
            "seconds_left": round(left, 1),
        }
        logger.info(
            "backfill %s: %d of %d rows (%.0f %%), %.0f rows/s, about %.0f s left",
            self.table,
            self.rows,
            self.todo,
            100 * min(share, 1.0),
            rate,
            left,
            extra=fields,
        )


def _constraint_exists(table: str, name: str) -> bool:
    if op.get_context().as_sql:
        return False
    found = op.get_bind().execute(
        text("SELECT 1 FROM pg_constraint WHERE conname = :name AND conrelid = to_regclass(:table)"),
        {"name": name, "table": table},
    )
    return found.first() is not None
