"""The production gate: what a migration may do in production, and who must have said so.

Upgrades pass unless MIGRATION_REQUIRE_FORCE=true, and then need a force flag
(``--force``, MIGRATION_FORCE or ``-x force=true``). A downgrade needs an explicit,
local decision: ``force=True`` from the caller (``atsboost-db migrate downgrade REV
--force``); the environment's MIGRATION_FORCE never opens it. A downgrade to base,
or one that drops a table holding rows, also needs ``allow_data_loss``; the
refusal lists the tables and their rows, as Flyway keeps ``clean`` off by default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from atsboost.config.environment import Environment
from atsboost.config.settings import MigrationSettings
from atsboost.errors import MigrationRefusedError
from atsboost.migrations.results import Revision
from atsboost.migrations.run.rendering import DroppedTable

_REVIEW = "Nothing was changed. Review it with --dry-run (or MIGRATION_DRYRUN=true)"


@dataclass(frozen=True)
class Gate:
    """Who said what for this run: force flags and the data-loss permission."""

    settings: MigrationSettings
    force: bool  # --force, MIGRATION_FORCE or -x force=true: opens the upgrade gate
    local_force: bool  # force=True from the caller itself: needed for a production downgrade
    allow_data_loss: bool

    @property
    def production(self) -> bool:
        """True when the gate applies at all."""
        return self.settings.environment is Environment.PRODUCTION

    def check_upgrade(self, plan: Sequence[Revision]) -> None:
        """Refuse pending revisions in production while MIGRATION_REQUIRE_FORCE is set and not forced."""
        if not self.production or self.force or not self.settings.require_force:
            return
        raise MigrationRefusedError(
            f"refusing to apply {len(plan)} revision(s) in production (MIGRATION_REQUIRE_FORCE=true): "
            f"{_listed(plan)}. {_REVIEW}, then run again with MIGRATION_FORCE=true (or --force, or "
            "alembic -x force=true)"
        )

    def check_downgrade(
        self, plan: Sequence[Revision], *, to_base: bool, dropped: Callable[[], list[DroppedTable]]
    ) -> list[DroppedTable]:
        """Refuse a production downgrade without a local force, and data loss without its permission."""
        if not self.production:
            return []
        if not self.local_force:
            raise MigrationRefusedError(
                f"refusing to revert {len(plan)} revision(s) in production: {_listed(plan)}. A downgrade "
                "needs a decision on the command line: `atsboost-db migrate downgrade REVISION --force` "
                f"(MIGRATION_FORCE and -x force=true open the upgrade gate only). {_REVIEW}"
            )
        losses = [table for table in dropped() if table.rows > 0]
        if (to_base or losses) and not self.allow_data_loss:
            what = ", ".join(str(t) for t in losses) or "no table with rows, but every table of the schema"
            raise MigrationRefusedError(
                f"refusing to revert {len(plan)} revision(s) in production: it would drop {what}"
                f"{' (a downgrade to base)' if to_base else ''}. If that data may go, run again with "
                f"--allow-data-loss as well as --force. {_REVIEW}"
            )
        return losses


def _listed(plan: Sequence[Revision]) -> str:
    return ", ".join(str(revision) for revision in plan)
