"""Checksums of applied revisions, as Flyway keeps them: an edit after applying is noticed, not silent.

When a revision is applied its normalised source (line endings and trailing
spaces aside) is hashed into ``atsboost_checksums``, beside ``alembic_version``,
with the revisions it follows: so the recorded graph answers "is this database at
head?" without loading Alembic (``integrity.current``).
A revision edited afterwards, or whose file is gone, is reported by ``migrate``,
``migrate status`` and ``migrate validate``; ``migrate repair`` records the files as
they are after a reviewed edit. Databases migrated before checksums existed are
back-filled on their next ``migrate``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, text

from atsboost.migrations.integrity.sources import normalised_hash, sql_hash

TABLE = "atsboost_checksums"
_CREATE = text(
    f"CREATE TABLE IF NOT EXISTS {TABLE} (revision text PRIMARY KEY, checksum text NOT NULL, "
    "sql_checksum text, sql_unrendered text, down_revisions text[], depends_on text[], "
    "recorded_at timestamptz NOT NULL DEFAULT now())"
)
# Tables created before a column existed get it (the first migrate after an upgrade of atsboost).
_ADD_COLUMNS = text(
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS sql_checksum text, "
    "ADD COLUMN IF NOT EXISTS sql_unrendered text, ADD COLUMN IF NOT EXISTS down_revisions text[], "
    "ADD COLUMN IF NOT EXISTS depends_on text[]"
)
_INSERT = (
    f"INSERT INTO {TABLE} (revision, checksum, down_revisions, depends_on) "
    "VALUES (:revision, :checksum, :down_revisions, :depends_on) ON CONFLICT (revision) DO UPDATE "
)
_RECORD = text(
    f"{_INSERT}SET checksum = excluded.checksum, down_revisions = excluded.down_revisions, "
    "depends_on = excluded.depends_on, recorded_at = now()"
)
_BACKFILL = text(
    f"{_INSERT}SET down_revisions = excluded.down_revisions, depends_on = excluded.depends_on "
    f"WHERE {TABLE}.down_revisions IS NULL OR {TABLE}.depends_on IS NULL"
)


def not_ours(name: str | None, type_: str, parent_names: Any) -> bool:
    """Autogenerate's include_name: leave atsboost's checksum table alone, as it does alembic_version."""
    return not (type_ == "table" and name == TABLE)


def checksum(script: Script) -> str:
    """Hash a revision's source, ignoring line endings and trailing spaces (an editor's doing)."""
    return normalised_hash(Path(script.path).read_text(encoding="utf-8"))


def _row(script: Script, scripts: ScriptDirectory) -> dict[str, Any]:
    return {
        "revision": script.revision,
        "checksum": checksum(script),
        "down_revisions": _ids(script.down_revision),
        "depends_on": dependencies(script, scripts),
    }


def dependencies(script: Script, scripts: ScriptDirectory) -> list[str]:
    """Return the revisions ``script`` depends on (``depends_on``), as ids.

    Alembic keeps a dependency out of ``alembic_version`` once a revision that depends on it is
    applied, as it does a parent: a project's first revision depending on atsboost's head leaves
    only the project's head there, while atsboost's head stays one of the script heads.
    """
    followed = []
    for name in _ids(script.dependencies):
        found = scripts.get_revision(name) if name not in _labels(scripts) else _labelled(scripts, name)
        if found is not None:
            followed.append(found.revision)
    return followed


def _ids(value: str | Sequence[str] | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _labels(scripts: ScriptDirectory) -> set[str]:
    return {label for script in scripts.walk_revisions() for label in script.branch_labels}


def _labelled(scripts: ScriptDirectory, label: str) -> Script | None:
    """Return the revision that carries the branch label ``label`` (what a dependency on it names)."""
    return next((script for script in scripts.walk_revisions() if label in script.branch_labels), None)


def record_sql(conn: Connection, revision: str, sql: str) -> None:
    """Record the checksum of the SQL a revision renders (kept by atsboost's own migrate)."""
    params = {"revision": revision, "sql": sql_hash(sql)}
    update = f"UPDATE {TABLE} SET sql_checksum = :sql, sql_unrendered = NULL WHERE revision = :revision"
    conn.execute(text(update), params)


def record_unrendered(conn: Connection, revision: str, reason: str) -> None:
    """Record that a revision's SQL could not be rendered offline, and why: only its source is kept."""
    params = {"revision": revision, "reason": reason}
    update = f"UPDATE {TABLE} SET sql_checksum = NULL, sql_unrendered = :reason WHERE revision = :revision"
    conn.execute(text(update), params)


def sql_recorded(conn: Connection) -> dict[str, str]:
    """Return the recorded SQL checksums by revision (revisions applied by atsboost-db migrate)."""
    if not conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": TABLE}).scalar_one():
        return {}
    rows = conn.execute(text(f"SELECT revision, sql_checksum FROM {TABLE} WHERE sql_checksum IS NOT NULL"))
    return {revision: value for revision, value in rows}


def ensure_table(conn: Connection) -> None:
    """Create the checksum table if it is missing (inside the migration's transaction)."""
    conn.execute(_CREATE)
    conn.execute(_ADD_COLUMNS)


def record(conn: Connection, script: Script, scripts: ScriptDirectory) -> None:
    """Record the checksum of a revision just applied."""
    conn.execute(_RECORD, _row(script, scripts))


def forget(conn: Connection, revision: str) -> None:
    """Drop the checksum of a revision just reverted."""
    conn.execute(text(f"DELETE FROM {TABLE} WHERE revision = :revision"), {"revision": revision})


def backfill(conn: Connection, scripts: ScriptDirectory, heads: Iterable[str]) -> None:
    """Record the checksums of applied revisions that have none yet (a database older than checksums)."""
    current = tuple(heads)
    if not current:
        return
    for script in scripts.iterate_revisions(current, "base"):
        conn.execute(_BACKFILL, _row(script, scripts))


def mismatches(conn: Connection, scripts: ScriptDirectory) -> list[str]:
    """Say which applied revisions were edited after they were applied, or have lost their file."""
    if not conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": TABLE}).scalar_one():
        return []
    found = []
    for revision, recorded in conn.execute(
        text(f"SELECT revision, checksum FROM {TABLE} ORDER BY recorded_at")
    ):
        script = scripts.get_revision(revision) if revision in _known(scripts) else None
        if script is None:
            found.append(f"revision {revision} was applied, but its file is gone")
        elif checksum(script) != recorded:
            found.append(f"revision {revision} ({script.path}) was edited after it was applied")
    return found


def repair(conn: Connection, scripts: ScriptDirectory) -> list[str]:
    """Record the files as they are now (after a reviewed edit); forget revisions whose file is gone."""
    repaired = mismatches(conn, scripts)
    known = _known(scripts)
    for revision in list(conn.execute(text(f"SELECT revision FROM {TABLE}")).scalars()):
        if revision in known:
            script = scripts.get_revision(revision)
            assert script is not None
            record(conn, script, scripts)
        else:
            forget(conn, revision)
    return repaired


def _known(scripts: ScriptDirectory) -> set[str]:
    return {script.revision for script in scripts.walk_revisions()}
