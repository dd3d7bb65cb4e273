"""Where a new revision goes, and what autogenerate adds to it.

A project's revisions live in its first version location, as a branch of their
own. Schema components it includes (``components``: the ATSBoost application's
``atsboost`` branch, shipped in the package) are branches too: the project's first
revision starts from base and depends on their heads, so their tables exist before
the project's may refer to them. Every ``alembic revision`` and ``atsboost-db
migrate create`` is routed so (through ``process_revision_directives``), never
into an installed package.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alembic.operations import ops
from alembic.runtime.environment import ProcessRevisionDirectiveFn
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import MetaData

from atsboost.errors import MigrationError
from atsboost.migrations.components import SchemaComponent, included, labels, resolve_location
from atsboost.migrations.run.options import options_of


def own_versions(scripts: ScriptDirectory) -> Path:
    """Return the folder new revisions of this project go to: its first version location."""
    locations = scripts.version_locations or [str(Path(scripts.dir) / "versions")]
    return resolve_location(str(locations[0]))


def own_heads(scripts: ScriptDirectory) -> list[Script]:
    """Return the heads among this project's own revisions (not an included component's)."""
    folder = own_versions(scripts)
    heads = [scripts.get_revision(head) for head in scripts.get_heads()]
    return [h for h in heads if h is not None and Path(h.path).resolve().parent == folder]


def branch_head(scripts: ScriptDirectory, component: SchemaComponent) -> Script:
    """Return the component's latest revision in this project, or say how to include its schema."""
    head = scripts.get_revision(f"{component.branch}@head") if component.branch in labels(scripts) else None
    if head is None:
        raise MigrationError(
            f"this Alembic project does not include the {component.branch} schema; add the line "
            f"'{component.versions}' to version_locations in alembic.ini (with path_separator = "
            "newline), as `atsboost-db migrate init` writes it"
        )
    return head


def rewrite(metadata: Sequence[MetaData]) -> ProcessRevisionDirectiveFn:
    """Return the ``process_revision_directives`` hook: route, skip empty, then the components' edits."""

    def hook(context: MigrationContext, revision: object, directives: list[ops.MigrationScript]) -> None:
        if not directives:
            return
        directive = directives[0]
        skip_empty = context.config is not None and options_of(context.config).skip_empty
        if skip_empty and directive.upgrade_ops is not None and directive.upgrade_ops.is_empty():
            directives[:] = []
            return
        if context.script is None:
            return
        _route(context.script, directive)
        for component in included(context.script):
            edit = component.load_directives()
            if edit is not None:
                edit(directive, metadata)

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
    components = included(scripts)
    if heads:
        directive.head = heads[0].revision
    elif all(folder != component.folder() for component in components):
        # The project's first revision: a branch of its own, after the schemas it includes.
        directive.head = "base"
        needed = [branch_head(scripts, component).revision for component in components]
        directive.depends_on = (needed[0] if len(needed) == 1 else needed) or None
