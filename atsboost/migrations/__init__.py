"""Migrations: Alembic with production safety, as library calls and as an ``env.py`` environment."""

from atsboost.migrations.commands import (
    MigrationStatus,
    alembic_config,
    create,
    downgrade,
    status,
    upgrade,
)
from atsboost.migrations.environment import MigrationResult, Revision

__all__ = [
    "MigrationResult",
    "MigrationStatus",
    "Revision",
    "alembic_config",
    "create",
    "downgrade",
    "status",
    "upgrade",
]
