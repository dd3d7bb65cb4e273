"""Where a new revision goes, and what autogenerate adds to it, in projects that include atsboost's schema.

atsboost's own revisions are a branch labelled ``atsboost`` that lives in the
package. An application's revisions live in the project's first version location,
as a branch of their own: its first revision starts from base and depends on
atsboost's head, so atsboost's tables exist before the app's may refer to them.
Every ``alembic revision`` and ``atsboost-db migrate create`` is routed so
(through ``process_revision_directives``), never into the installed package.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from pathlib import Path

from alembic.operations import ops
from alembic.runtime.environment import ProcessRevisionDirectiveFn
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import MetaData, Table

from atsboost.errors import MigrationError
from atsboost.migrations.options import options_of

BRANCH = "atsboost"
ATSBOOST_VERSIONS = Path(__file__).resolve().parent / "versions"
_TRIGGER = (
    "CREATE TRIGGER {name}_set_updated_at BEFORE UPDATE ON {table} "
    "FOR EACH ROW EXECUTE FUNCTION atsboost_set_updated_at()"
)


def own_versions(scripts: ScriptDirectory) -> Path:
    """Return the folder new revisions of this project go to: its first version location."""
    locations = scripts.version_locations or [str(Path(scripts.dir) / "versions")]
    return _resolve(str(locations[0]))


def own_heads(scripts: ScriptDirectory) -> list[Script]:
    """Return the heads among this project's own revisions (not atsboost's, unless this is atsboost)."""
    folder = own_versions(scripts)
    heads = [scripts.get_revision(head) for head in scripts.get_heads()]
    return [h for h in heads if h is not None and Path(h.path).resolve().parent == folder]


def atsboost_head(scripts: ScriptDirectory) -> Script:
    """Atsboost's latest revision in this project, or an error saying how to include atsboost's schema."""
    head = scripts.get_revision(f"{BRANCH}@head") if BRANCH in _labels(scripts) else None
    if head is None:
        raise MigrationError(
            "this Alembic project does not include atsboost's schema; add the line "
            "'atsboost.migrations:versions' to version_locations in alembic.ini (with path_separator = "
            "newline), as `atsboost-db migrate init` writes it"
        )
    return head


def rewrite(metadata: Sequence[MetaData]) -> ProcessRevisionDirectiveFn:
    """Return the ``process_revision_directives`` hook: route, skip empty, add updated_at triggers."""

    def hook(context: MigrationContext, revision: object, directives: list[ops.MigrationScript]) -> None:
        if not directives:
            return
        directive = directives[0]
        skip_empty = context.config is not None and options_of(context.config).skip_empty
        if skip_empty and directive.upgrade_ops is not None and directive.upgrade_ops.is_empty():
            directives[:] = []
            return
        if context.script is not None:
            _route(context.script, directive)
        _add_updated_at_triggers(directive, metadata)

    return hook


def _route(scripts: ScriptDirectory, directive: ops.MigrationScript) -> None:
    folder = own_versions(scripts)
    if directive.version_path is None:
        directive.version_path = folder.as_posix()
    if directive.head not in (None, "head"):
        return  # the author chose where it goes (--head)
    heads = own_heads(scripts)
    if len(heads) > 1:
        listed = ", ".join(h.revision for h in heads)
        raise MigrationError(
            f"your revisions have {len(heads)} heads ({listed}), written in parallel; join them with "
            f"`atsboost-db migrate merge` (or `alembic merge {listed.replace(',', '')}`), then create the "
            "revision again"
        )
    if heads:
        directive.head = heads[0].revision
    elif folder != ATSBOOST_VERSIONS:
        # The project's first revision: a branch of its own, after atsboost's schema.
        directive.head = "base"
        directive.depends_on = atsboost_head(scripts).revision


def _add_updated_at_triggers(directive: ops.MigrationScript, metadata: Sequence[MetaData]) -> None:
    """Give a new table with atsboost's Timestamps mixin the trigger that keeps its updated_at."""
    upgrade = directive.upgrade_ops
    if upgrade is None:
        return
    for position in reversed(range(len(upgrade.ops))):
        created = upgrade.ops[position]
        if isinstance(created, ops.CreateTableOp):
            table = _table(metadata, created.table_name, created.schema)
            column = table.c.get("updated_at") if table is not None else None
            if table is not None and column is not None and column.server_onupdate is not None:
                sql = _TRIGGER.format(name=table.name, table=table.fullname)
                upgrade.ops.insert(position + 1, ops.ExecuteSQLOp(sql))


def _table(metadata: Sequence[MetaData], name: str, schema: str | None) -> Table | None:
    key = f"{schema}.{name}" if schema else name
    return next((md.tables[key] for md in metadata if key in md.tables), None)


def _labels(scripts: ScriptDirectory) -> set[str]:
    return {label for script in scripts.walk_revisions() for label in script.branch_labels}


def _resolve(location: str) -> Path:
    """Return a version location as a folder: a path, or Alembic's 'package:folder' resource form."""
    if ":" in location and not Path(location).is_absolute():
        package, _, folder = location.partition(":")
        return Path(str(importlib.resources.files(package).joinpath(*folder.split(":")))).resolve()
    return Path(location).resolve()
