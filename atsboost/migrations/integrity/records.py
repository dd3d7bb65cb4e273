"""Applied revisions against their files: ``validate`` (as Flyway's) and ``repair``.

``atsboost-db migrate`` records a checksum of each revision's file and of the SQL it
renders (``checksums``); these compare them again and bring them into step after a
reviewed edit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import sqlalchemy.exc
from sqlalchemy import Connection

from atsboost.config.settings import Settings, get_settings
from atsboost.errors import RevisionNotRenderableError
from atsboost.migrations.integrity import checksums
from atsboost.migrations.integrity.sources import normalised_hash, sql_hash
from atsboost.migrations.project import alembic_config, script_directory
from atsboost.migrations.run.rendering import render
from atsboost.migrations.run.session import migration_engine
from atsboost.runtime.diagnosis import database_error
from atsboost.runtime.engine import engine_url

T = TypeVar("T")


def validate(settings: Settings | None = None) -> list[str]:
    """Say which applied revisions were edited, lost their file, or now render other SQL (empty: none).

    The SQL comparison renders each revision recorded by ``atsboost-db migrate`` again:
    it notices a change that reaches a revision without editing it (a helper it calls).
    """
    scripts = script_directory(alembic_config(settings))

    def read(conn: Connection) -> tuple[list[str], dict[str, str]]:
        return list(checksums.mismatches(conn, scripts)), checksums.sql_recorded(conn)

    problems, recorded_sql = with_connection(settings, read)
    known = {script.revision for script in scripts.walk_revisions()}
    for revision, recorded in recorded_sql.items():
        if revision not in known or any(f"revision {revision} " in problem for problem in problems):
            continue  # named already: its file is gone or was edited
        script = scripts.get_revision(revision)
        if script is None:
            continue
        try:
            sql = render(settings, script, scripts)
            # Recorded in statement order before atsboost sorted them: either form matches.
            if recorded not in (sql_hash(sql), normalised_hash(sql)):
                problems.append(f"revision {revision} now renders other SQL than when it was applied")
        except RevisionNotRenderableError as exc:
            problems.append(f"revision {revision} rendered SQL when applied, and now cannot: {exc.reason}")
    return problems


def record_rendered_sql(
    settings: Settings | None,
    revisions: list[str],
    known: dict[str, str] | None = None,
    unrendered: dict[str, str] | None = None,
) -> None:
    """Keep the checksum of the SQL each applied revision renders, for `migrate validate`.

    ``known`` holds what the lint rendered already, ``unrendered`` why it could not
    render others; only the rest is rendered now. A revision that cannot be
    rendered is recorded as such: its source checksum alone guards it.
    """
    scripts = script_directory(alembic_config(settings))
    rendered = {rev: sql for rev, sql in (known or {}).items() if rev in revisions}
    failed = {rev: why for rev, why in (unrendered or {}).items() if rev in revisions}
    for revision in revisions:
        script = scripts.get_revision(revision)
        if revision in rendered or revision in failed or script is None:
            continue
        try:
            rendered[revision] = render(settings, script, scripts)
        except RevisionNotRenderableError as exc:
            failed[revision] = exc.reason

    def record(conn: Connection) -> None:
        for revision, sql in rendered.items():
            checksums.record_sql(conn, revision, sql)
        for revision, reason in failed.items():
            checksums.record_unrendered(conn, revision, reason)
        conn.commit()

    with_connection(settings, record)


def with_connection(settings: Settings | None, work: Callable[[Connection], T]) -> T:
    """Run ``work`` on a connection of the migration URL; a database failure is explained."""
    engine = migration_engine(settings or get_settings())
    try:
        with engine.connect() as conn:
            return work(conn)
    except sqlalchemy.exc.DBAPIError as exc:
        raise database_error(engine_url(engine), exc) from None
    finally:
        engine.dispose()


def repair(settings: Settings | None = None) -> list[str]:
    """Record the revision files (and the SQL they render) as they are now, after a reviewed edit.

    Return what was out of step.
    """
    out_of_step = validate(settings)
    scripts = script_directory(alembic_config(settings))

    def record_files(conn: Connection) -> dict[str, str]:
        checksums.ensure_table(conn)
        checksums.repair(conn, scripts)
        conn.commit()
        return checksums.sql_recorded(conn)

    record_rendered_sql(settings, list(with_connection(settings, record_files)))
    return out_of_step
