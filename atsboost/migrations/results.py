"""What migrations report: a revision, where the database stands, what a run did.

Plain values, loaded without Alembic or SQLAlchemy, so the short paths
(``migrate status``, a ``migrate`` with nothing to do) can return them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Revision:
    """A revision by id and message."""

    id: str
    message: str

    def __str__(self) -> str:
        return f"{self.id} ({self.message})"


@dataclass(frozen=True)
class MigrationStatus:
    """Where the database stands against the code's revisions."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: list[Revision]
    edited: tuple[str, ...] = ()  # applied revisions edited since, or whose file is gone

    @property
    def up_to_date(self) -> bool:
        """True when no revision is pending."""
        return not self.pending


@dataclass(frozen=True)
class AppliedRevision:
    """One revision applied (or reverted) and how long it took."""

    id: str
    message: str
    upgrade: bool
    seconds: float


@dataclass
class MigrationResult:
    """What a migration run did."""

    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    pending: list[Revision] = field(default_factory=list)
    applied: list[AppliedRevision] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0
    unusable: list[str] = field(default_factory=list)  # what the application's role cannot use now
