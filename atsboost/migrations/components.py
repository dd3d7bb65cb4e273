"""Schemas that installed packages ship with their revisions, found through entry points.

A package that brings tables of its own (the ATSBoost application brings ``users``,
``subscription_plans`` and ``subscriptions``) declares a :class:`SchemaComponent`
under the ``atsboost.schemas`` entry-point group. The migrations layer knows no
component by name: a project includes one by holding its branch, listing its
``versions`` in ``version_locations`` (``migrate init`` writes every installed one
unless told ``--no-app-schema``), and only then are its models compared by autogenerate and
its branch's head made a dependency of the project's first revision.
"""

from __future__ import annotations

import functools
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from atsboost.errors import MigrationError

if TYPE_CHECKING:
    from alembic.operations.ops import MigrationScript
    from alembic.script import ScriptDirectory
    from sqlalchemy import MetaData

GROUP = "atsboost.schemas"

Directives = Callable[["MigrationScript", "Sequence[MetaData]"], None]


@dataclass(frozen=True)
class SchemaComponent:
    """A schema shipped as an Alembic branch: its label, its revisions' folder, its models.

    ``versions`` is Alembic's ``package:folder`` form, as written in alembic.ini;
    ``metadata`` and ``directives`` are ``module:attribute`` names, imported only where
    models are compared, so applying revisions never loads the component's ORM.
    ``directives`` (optional) edits each new revision autogenerate writes.
    """

    branch: str
    versions: str
    metadata: str
    directives: str | None = None

    def folder(self) -> Path:
        """Return the folder of the component's revisions."""
        return resolve_location(self.versions)

    def load_metadata(self) -> MetaData:
        """Import and return the component's models' MetaData (a DeclarativeBase's or a MetaData)."""
        found = pkgutil.resolve_name(self.metadata)
        return getattr(found, "metadata", found)  # type: ignore[no-any-return]

    def load_directives(self) -> Directives | None:
        """Import and return the component's revision hook, if it has one."""
        return None if self.directives is None else pkgutil.resolve_name(self.directives)


@functools.cache
def installed() -> tuple[SchemaComponent, ...]:
    """Return every installed package's schema component, by branch label."""
    found = []
    for point in entry_points(group=GROUP):
        component = point.load()
        if not isinstance(component, SchemaComponent):
            raise MigrationError(
                f"the entry point {point.name} = {point.value} in group {GROUP} is not a SchemaComponent; "
                "fix or uninstall the package that declares it"
            )
        found.append(component)
    return tuple(sorted(found, key=lambda c: c.branch))


def included(scripts: ScriptDirectory) -> list[SchemaComponent]:
    """Return the installed components whose branch this project's revisions hold.

    By branch label, not by folder: a project that lists the component's ``versions``
    holds it, and so does one that copied those revisions into its own folder.
    """
    held = labels(scripts)
    return [component for component in installed() if component.branch in held]


def labels(scripts: ScriptDirectory) -> set[str]:
    """Return every branch label of the project's revisions."""
    return {label for script in scripts.walk_revisions() for label in script.branch_labels}


def resolve_location(location: str) -> Path:
    """Return a version location as a folder: a path, or Alembic's 'package:folder' resource form."""
    import importlib.resources

    if ":" in location and not Path(location).is_absolute():
        package, _, folder = location.partition(":")
        return Path(str(importlib.resources.files(package).joinpath(*folder.split(":")))).resolve()
    return Path(location).resolve()
