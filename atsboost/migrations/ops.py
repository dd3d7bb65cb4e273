"""Helpers for writing revisions that are safe on a live database.

``CREATE INDEX CONCURRENTLY`` builds an index without blocking writes, but it
cannot run in a transaction, and when it fails it leaves an INVALID index behind
that ``IF NOT EXISTS`` would then silently keep. These helpers run in Alembic's
``autocommit_block`` and rebuild such a leftover, so re-running a revision repairs
a failed build.
"""

from __future__ import annotations

import logging
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
