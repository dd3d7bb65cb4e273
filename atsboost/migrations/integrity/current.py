"""Where the database stands against the code's revisions: ``status()``.

At head, with every revision file matching the checksum recorded when it was
applied, the answer comes from one psycopg connection and a listing of the files,
without loading Alembic or SQLAlchemy: ``migrate status`` and ``health`` start in
a fraction of ``alembic current``'s time. Anything else (revisions pending, an
edited or missing file, a database whose checksums predate the recorded graph, a
project only Alembic can read) is answered by Alembic's own walk, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from atsboost.config.settings import Settings, get_settings
from atsboost.migrations.integrity import sources
from atsboost.migrations.results import MigrationStatus

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger("atsboost.migrations")

# The same reads as Alembic's get_current_heads, and checksums' table (named there).
_CURRENT = "SELECT version_num FROM alembic_version"
_RECORDED = "SELECT revision, checksum, down_revisions, depends_on FROM atsboost_checksums"


def status(settings: Settings | None = None) -> MigrationStatus:
    """Read the current revision (read-only: no lock, no version table created) and what is pending."""
    settings = settings or get_settings()
    found = at_head(settings)
    if found is not None:
        return found
    from atsboost.migrations.commands import alembic_status  # Alembic loads only when needed

    return alembic_status(settings)


def at_head(settings: Settings, conn: psycopg.Connection[Any] | None = None) -> MigrationStatus | None:
    """Return the status if the database is at head with every file as applied; None if unsure.

    It reads on ``conn`` when given (the migration lock's), else on a connection of
    its own. A connection refused raises the same explained error as every other command.
    """
    files = sources.file_hashes(settings.migration.alembic_ini)
    if not files:
        return None
    current, recorded = _rows(conn) if conn is not None else _read(settings)
    if current is None or not _all_applied(current, recorded, files):
        return None
    logger.debug("at head, every revision file as applied: read without Alembic")
    return MigrationStatus(tuple(current), _script_heads(recorded), [])


def connect(settings: Settings) -> psycopg.Connection[Any] | None:
    """Open a direct connection for migrations (DATABASE_MIGRATION_URL, else DATABASE_URL).

    None where Alembic's run has to connect instead: the embedded server (the engine
    starts it), or a transaction pooler without DATABASE_MIGRATION_URL (the run says
    what to set). A refused connection raises the explained error every command gives.
    """
    url = settings.migration_url or settings.url
    if url is None or (settings.migration_url is None and settings.pool.mode == "transaction"):
        return None
    import psycopg

    from atsboost.runtime.diagnosis import database_error
    from atsboost.runtime.libpq import direct_connection

    try:
        return direct_connection(settings, "migrate", url)
    except psycopg.Error as exc:
        raise database_error(url, exc) from None


def _read(settings: Settings) -> tuple[list[str] | None, list[Any]]:
    """Read alembic_version and the recorded checksums; (None, []) where only Alembic can."""
    conn = connect(settings)
    if conn is None:
        return None, []
    with conn:
        return _rows(conn)


def _rows(conn: psycopg.Connection[Any]) -> tuple[list[str] | None, list[Any]]:
    import psycopg

    try:
        current = [row[0] for row in conn.execute(_CURRENT)]
        return current, conn.execute(_RECORDED).fetchall()
    except psycopg.Error:  # a table missing (an empty database, checksums not kept yet) or unreadable
        return None, []


def _all_applied(current: Sequence[str], recorded: Sequence[Any], files: list[str]) -> bool:
    """Tell whether the files are exactly the applied revisions, and the database at their heads.

    ``alembic_version`` holds the revisions nothing follows, through a parent or a dependency.
    """
    if sorted(checksum for _, checksum, _, _ in recorded) != files:
        return False  # a revision pending, edited or gone
    if any(parents is None or needs is None for _, _, parents, needs in recorded):
        return False  # recorded before the graph was kept: Alembic's walk says where the heads are
    followed = {revision for _, _, parents, needs in recorded for revision in [*parents, *needs]}
    heads = {revision for revision, _, _, _ in recorded} - followed
    return bool(current) and set(current) == heads


def _script_heads(recorded: Sequence[Any]) -> tuple[str, ...]:
    """Return the revisions no revision has as a parent: Alembic's script heads (a dependency may be one)."""
    parents = {parent for _, _, down, _ in recorded for parent in down}
    return tuple(sorted({revision for revision, _, _, _ in recorded} - parents))
