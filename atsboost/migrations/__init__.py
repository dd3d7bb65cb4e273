"""Migrations: Alembic with production safety, as library calls and as an ``env.py`` environment.

``upgrade``, ``downgrade``, ``status``, ``create`` and ``merge`` run Alembic's
command API; ``run_migrations`` is what an ``env.py`` calls; ``init_project``
writes an application's Alembic project (``atsboost-db migrate init``).
"""

from atsboost.migrations.commands import (
    MigrationStatus,
    check,
    create,
    downgrade,
    merge,
    status,
    upgrade,
)
from atsboost.migrations.environment import run_migrations
from atsboost.migrations.integrity import repair, validate
from atsboost.migrations.options import MigrationOptions, MigrationResult, Revision
from atsboost.migrations.project import alembic_config, init_project

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
