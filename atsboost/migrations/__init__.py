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
    from atsboost.migrations.commands import check, create, downgrade, merge
    from atsboost.migrations.current import status
    from atsboost.migrations.environment import run_migrations
    from atsboost.migrations.integrity import repair, validate
    from atsboost.migrations.options import MigrationOptions
    from atsboost.migrations.project import alembic_config, init_project
    from atsboost.migrations.queue import upgrade
    from atsboost.migrations.results import MigrationResult, MigrationStatus, Revision

_WHERE = {
    "MigrationOptions": "options",
    "MigrationResult": "results",
    "MigrationStatus": "results",
    "Revision": "results",
    "alembic_config": "project",
    "check": "commands",
    "create": "commands",
    "downgrade": "commands",
    "init_project": "project",
    "merge": "commands",
    "repair": "integrity",
    "run_migrations": "environment",
    "status": "current",
    "upgrade": "queue",
    "validate": "integrity",
}
__all__ = [
    "MigrationOptions",
    "MigrationResult",
    "MigrationStatus",
    "Revision",
    "alembic_config",
    "check",
    "create",
    "downgrade",
    "init_project",
    "merge",
    "repair",
    "run_migrations",
    "status",
    "upgrade",
    "validate",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used (PEP 562)."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
