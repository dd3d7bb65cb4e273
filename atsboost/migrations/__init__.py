"""Migrations: Alembic with production safety, as library calls and as an ``env.py`` environment.

``upgrade``, ``downgrade``, ``status``, ``create`` and ``merge`` run Alembic's
command API; ``run_migrations`` is what an ``env.py`` calls; ``init_project``
writes an application's Alembic project (``atsboost-db migrate init``).

The names load on first use: ``status`` at head needs neither Alembic nor
SQLAlchemy, so ``atsboost-db migrate status`` starts without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atsboost.config.settings import Settings
    from atsboost.migrations.commands import check, create, downgrade, lint_pending, merge
    from atsboost.migrations.integrity.current import status
    from atsboost.migrations.integrity.records import repair, validate
    from atsboost.migrations.project import alembic_config, init_project
    from atsboost.migrations.results import MigrationResult, MigrationStatus, Revision
    from atsboost.migrations.run.environment import run_migrations
    from atsboost.migrations.run.options import MigrationOptions
    from atsboost.migrations.run.queue import upgrade

_WHERE = {
    "MigrationOptions": "run.options",
    "MigrationResult": "results",
    "MigrationStatus": "results",
    "Revision": "results",
    "alembic_config": "project",
    "check": "commands",
    "create": "commands",
    "downgrade": "commands",
    "init_project": "project",
    "lint_pending": "commands",
    "merge": "commands",
    "repair": "integrity.records",
    "run_migrations": "run.environment",
    "status": "integrity.current",
    "upgrade": "run.queue",
    "validate": "integrity.records",
}
__all__ = [
    "MigrationOptions",
    "MigrationResult",
    "MigrationStatus",
    "Revision",
    "alembic_config",
    "before_serving",
    "check",
    "create",
    "downgrade",
    "init_project",
    "lint_pending",
    "merge",
    "repair",
    "run_migrations",
    "status",
    "upgrade",
    "validate",
]


def before_serving(settings: Settings) -> None:
    """Apply every pending revision before the application serves, unless DATABASE_MIGRATE_ON_STARTUP=false.

    What ``atsboost.db.startup()`` and ``atsboost.aio.startup()`` run once the database
    answers (``runtime.database.BeforeServing``). Defined here, not beside ``upgrade``,
    so that importing ``atsboost.db`` loads none of the migrations' modules.
    """
    if settings.migration.on_startup:
        from atsboost.migrations.run.queue import upgrade

        upgrade(settings)


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used (PEP 562)."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
