"""What an upgrade or downgrade will apply, computed from the revision scripts before anything runs.

The plan comes from ``ScriptDirectory.iterate_revisions``, the same walk Alembic's
own upgrade and downgrade make, so the gate, the dry run and the lock see exactly
the revisions that Alembic then applies, in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from atsboost.errors import MigrationError
from atsboost.migrations.results import Revision


def plan(
    command: str | None, destination: str, current: Sequence[str], *, scripts: ScriptDirectory
) -> tuple[bool, list[Revision]]:
    """Return (is an upgrade, the revisions to apply or revert in order) from ``current`` to ``destination``.

    ``command`` is "upgrade" or "downgrade"; for anything else (a caller of
    ``alembic.command`` without atsboost's options) the direction follows from
    ``destination``: base, -N or an ancestor of the current revision go down.
    """
    upgrade = (
        command == "upgrade" if command in ("upgrade", "downgrade") else _ahead(scripts, destination, current)
    )
    if upgrade and destination == "head" and len(scripts.get_heads()) > 1:
        raise MigrationError(_multiple_heads(scripts, "head"))
    try:
        steps = (
            _upgrade(scripts, destination, current) if upgrade else _downgrade(scripts, destination, current)
        )
    except (CommandError, RevisionError) as exc:
        raise MigrationError(
            f"cannot plan the migration from {', '.join(current) or 'base'} to {destination}: {exc}"
        ) from None
    return upgrade, _revisions(steps)


def _ahead(scripts: ScriptDirectory, destination: str, current: Sequence[str]) -> bool:
    """Tell whether ``destination`` lies ahead of ``current`` (an upgrade) rather than behind it."""
    relative = destination.rpartition("@")[2]
    if relative == "base" or relative.startswith("-"):
        return False
    if relative in ("head", "heads") or relative.startswith("+") or not current:
        return True
    try:
        target = scripts.get_revision(destination)
        behind = {s.revision for s in scripts.iterate_revisions(tuple(current), "base")} - set(current)
    except (CommandError, RevisionError):
        return True  # let the upgrade's own walk report what is wrong with it
    return target is None or target.revision not in behind


def _multiple_heads(scripts: ScriptDirectory, asked: str) -> str:
    """Return the message for a command that needs one head when the project has several."""
    heads = ", ".join(scripts.get_heads())
    return (
        f"'{asked}' needs one head, but the revisions have several ({heads}), as a project with "
        "atsboost's schema branch always has: apply them all with `atsboost-db migrate` or "
        "`alembic upgrade heads`; if two heads are your own, written in parallel, join them with "
        "`atsboost-db migrate merge`"
    )


def _upgrade(scripts: ScriptDirectory, destination: str, current: Sequence[str]) -> list[Script]:
    found = scripts.iterate_revisions(destination, tuple(current), implicit_base=True)
    return list(reversed([s for s in found if isinstance(s, Script)]))


def _downgrade(scripts: ScriptDirectory, destination: str, current: Sequence[str]) -> list[Script]:
    found = scripts.iterate_revisions(tuple(current), destination, select_for_downgrade=True)
    return [s for s in found if isinstance(s, Script)]


def _revisions(scripts: list[Script]) -> list[Revision]:
    return [Revision(s.revision, _title(s.doc)) for s in scripts]


def _title(doc: str | None) -> str:
    """Return the first line of a revision's message: some projects write whole paragraphs there."""
    lines = (doc or "").strip().splitlines()
    return lines[0].strip() if lines else ""
