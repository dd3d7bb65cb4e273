"""``upgrade()``: a database at head is left at once; other migrators queue before loading Alembic.

Several instances deploying at once all run ``migrate``. Each reads, on one psycopg
connection, whether the database is at head (``current.at_head``): if so it returns
without waiting for anyone's lock and without loading Alembic. Otherwise it queues
for the migration lock on that connection before rendering or linting anything; the
first applies the pending revisions while the others wait, and each of them then
finds the database at head and leaves. Where this cannot be done (a dry run, another
destination, a connection handed in, the embedded server, a transaction pooler
without DATABASE_MIGRATION_URL) the lock is taken inside Alembic's run, as a plain
``alembic upgrade`` takes it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, TextIO

from atsboost.config.settings import Settings, get_settings
from atsboost.migrations.integrity import current
from atsboost.migrations.results import MigrationResult
from atsboost.migrations.run import locks

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

logger = logging.getLogger("atsboost.migrations")


def upgrade(
    settings: Settings | None = None,
    *,
    revision: str = "heads",
    dry_run: bool | None = None,
    force: bool | None = None,
    connection: Connection | Engine | None = None,
    output: TextIO | None = None,
) -> MigrationResult:
    """Apply pending revisions up to ``revision`` (by default every branch's head).

    With ``dry_run=True`` print the pending revisions and their SQL instead. Flags
    left None defer to the environment (MIGRATION_DRYRUN, MIGRATION_FORCE).
    """
    request = {"revision": revision, "dry_run": dry_run, "force": force, "connection": connection}
    from_env = settings or get_settings()
    dry = from_env.migration.dry_run if dry_run is None else dry_run
    conn = None if dry or revision != "heads" or connection is not None else current.connect(from_env)
    if conn is None:
        return _apply(settings, {**request, "output": output})
    key = locks.migration_key()
    with conn:
        found = current.at_head(from_env, conn)  # at head: no waiting behind anyone's lock
        if found is None:
            with locks.held(conn, key, wait=from_env.migration.lock_wait):
                found = current.at_head(from_env, conn)  # the migrator before may have done it all
                if found is None:
                    return _apply(settings, {**request, "output": output, "lock_held": key})
    logger.info("nothing to migrate: the database is at %s", ", ".join(found.current))
    return MigrationResult(before=found.current, after=found.current)


def _apply(settings: Settings | None, request: dict[str, Any]) -> MigrationResult:
    from atsboost.migrations.commands import apply  # Alembic loads here, once there is work

    return apply(settings, **request)
