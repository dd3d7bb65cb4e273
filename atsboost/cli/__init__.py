"""``atsboost-db``: a thin click layer over the library.

Heavy modules load inside the commands, so that ``atsboost-db --help`` starts
faster than ``alembic --help``.
"""

from __future__ import annotations

from atsboost.cli import data, health, metrics, migrate, roles
from atsboost.cli.root import cli

for command in (migrate.migrate, data.seed, data.init, health.health, metrics.metrics, roles.roles):
    cli.add_command(command)

__all__ = ["cli", "main"]


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="atsboost-db")
