"""Tests of a project's own revisions, to import into one of its test modules.

    from atsboost.testing.migrations import *  # noqa: F403

adds the four below, run with the plugin's test database (``atsboost_database``) on
the project's own Alembic project. Import only some by name, or leave one out with
``-k "not test_models_match_migrations"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from atsboost.errors import AtsboostError, first_line

if TYPE_CHECKING:
    from alembic.script import Script, ScriptDirectory

    from atsboost.config.settings import Settings
    from atsboost.testing.database import TestDatabase

__all__ = [
    "test_models_match_migrations",
    "test_revisions_lint_clean",
    "test_single_head",
    "test_upgrade_downgrade_each_revision",
]


def test_single_head(atsboost_database: TestDatabase) -> None:
    """Each line of revisions ends in one head: two revisions made on the same parent were merged.

    A branch of its own (atsboost's tables, another package's schema) has its own head;
    two heads that share an ancestor are a fork nobody merged (``atsboost-db migrate merge``).
    """
    scripts = _scripts(atsboost_database.settings)
    heads = [scripts.get_revision(head) for head in scripts.get_heads()]
    lines = {head.revision: _line(scripts, head) for head in heads if head is not None}
    forks = sorted(f"{a} and {b}" for a in lines for b in lines if a < b and lines[a] & lines[b])
    assert not forks, (
        f"the revisions fork without a merge: heads {'; '.join(forks)} share an ancestor; "
        "`atsboost-db migrate merge` writes the revision that joins them"
    )


def test_upgrade_downgrade_each_revision(atsboost_database: TestDatabase) -> None:
    """Every revision upgrades, downgrades and upgrades again, from base, on an empty database.

    Catches a downgrade that was never written or drops too little (the upgrade after
    it then fails), and an upgrade that only works once.
    """
    from atsboost.migrations import downgrade
    from atsboost.migrations.run.queue import upgrade

    with atsboost_database.empty() as empty:
        settings = _unlinted(empty)
        for script in _base_to_heads(_scripts(settings)):
            revision = script.revision
            down = f"{revision}@-1"  # exactly this revision, whatever else is applied
            _step(script, "upgrade", upgrade, settings, revision=revision)
            _step(script, "downgrade", downgrade, settings, revision=down, allow_data_loss=True)
            _step(script, "upgrade after its downgrade", upgrade, settings, revision=revision)


def test_models_match_migrations(atsboost_database: TestDatabase) -> None:
    """The models describe what the revisions build: no model changed without a revision.

    Alembic's comparison (``atsboost-db migrate check``) on the migrated test database,
    with env.py's ``target_metadata``.
    """
    from atsboost.migrations import check

    try:
        differences = check(atsboost_database.settings)
    except AtsboostError as exc:
        if "MetaData" in str(exc):
            pytest.skip("env.py sets no target_metadata, so there are no models to compare")
        raise
    assert not differences, (
        "the models differ from what the revisions build; `atsboost-db migrate create NAME --autogenerate` "
        "writes the revision: " + "; ".join(differences)
    )


def test_revisions_lint_clean(atsboost_database: TestDatabase) -> None:
    """No revision takes a lock, rewrites a table or breaks the running code where production refuses it.

    Production refuses a revision with an unwaived lint error (MIGRATION_LINT=error), so
    this test does, whatever the test environment's MIGRATION_LINT, unless it is ``off``.
    """
    from atsboost.migrations.lint import describe, lint

    settings = atsboost_database.settings
    if settings.migration.lint == "off":
        pytest.skip("MIGRATION_LINT=off")
    report = lint(settings)
    errors = [describe(f) for f in report.findings if f.waived is None and f.severity == "error"]
    assert not errors, (
        f"the lint found {len(errors)} error(s) that production refuses: " + "; ".join(errors) + ". Use the "
        "safe recipe (docs/migrations.md), or waive the rule in the revision: # atsboost: allow RULE -- why"
    )


def _scripts(settings: Settings) -> ScriptDirectory:
    from atsboost.migrations.project import alembic_config, script_directory

    return script_directory(alembic_config(settings))


def _line(scripts: ScriptDirectory, head: Script) -> set[str]:
    """Return the revisions a head descends from through down revisions (not through dependencies)."""
    seen: set[str] = set()
    waiting = [head]
    while waiting:
        script = waiting.pop()
        if script.revision in seen:
            continue
        seen.add(script.revision)
        waiting += [s for s in map(scripts.get_revision, _down(script)) if s is not None]
    return seen


def _down(script: Script) -> tuple[str, ...]:
    down = script.down_revision
    return () if down is None else (down,) if isinstance(down, str) else tuple(down)


def _base_to_heads(scripts: ScriptDirectory) -> Iterator[Script]:
    """Every revision, each after the ones it needs."""
    return reversed(list(scripts.walk_revisions()))


def _unlinted(settings: Settings) -> Settings:
    """Return the settings without the lint (``test_revisions_lint_clean`` lints): steps only migrate."""
    return dataclasses.replace(settings, migration=dataclasses.replace(settings.migration, lint="off"))


def _step(script: Script, what: str, run: Callable[..., Any], settings: Settings, **options: Any) -> None:
    """Run one step; if it fails, fail the test naming the revision, its file and the step."""
    try:
        run(settings, **options)
    except Exception as exc:
        failure = f"revision {script.revision} ({script.path}): its {what} failed: {first_line(exc)}"
    else:
        return
    pytest.fail(failure, pytrace=False)
