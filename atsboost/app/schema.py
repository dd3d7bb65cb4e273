"""The ATSBoost application's schema as a component any project may include, or leave out.

Its revisions are the ``atsboost`` branch in ``atsboost.migrations:versions`` (the
path every project's alembic.ini has named since the first release); its models are
``atsboost.app.models``. Declared under the ``atsboost.schemas`` entry point, so the
migrations layer finds it without importing the application.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from atsboost.migrations.components import SchemaComponent

if TYPE_CHECKING:  # the entry point loads this module: Alembic and SQLAlchemy only when used
    from alembic.operations.ops import MigrationScript
    from alembic.script import Script, ScriptDirectory
    from sqlalchemy import MetaData, Table

COMPONENT = SchemaComponent(
    branch="atsboost",
    versions="atsboost.migrations:versions",
    metadata="atsboost.app.models:Base",
    directives="atsboost.app.schema:add_updated_at_triggers",
)

_TRIGGER = (
    "CREATE TRIGGER {name}_set_updated_at BEFORE UPDATE ON {table} "
    "FOR EACH ROW EXECUTE FUNCTION atsboost_set_updated_at()"
)


def schema_head(scripts: ScriptDirectory) -> Script:
    """Return the application's latest revision in this project, or say how to include its schema."""
    from atsboost.migrations.revisions import branch_head

    return branch_head(scripts, COMPONENT)


def add_updated_at_triggers(directive: MigrationScript, metadata: Sequence[MetaData]) -> None:
    """Give a new table with the ``Timestamps`` mixin the trigger that keeps its updated_at."""
    from alembic.operations import ops

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
