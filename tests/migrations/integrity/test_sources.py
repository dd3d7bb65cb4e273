"""Revision files are found as Alembic finds them, or not at all (None) where only Alembic can tell."""

import warnings
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from atsboost.migrations import init_project
from atsboost.migrations.integrity.sources import file_hashes, revision_files, version_locations
from tests.conftest import add_revision


def alembic_lists(ini: Path | None) -> list[Path]:
    if ini is None:
        config = Config()
        config.set_main_option("script_location", "atsboost.migrations:template")
        config.set_main_option("version_locations", "atsboost.migrations:versions")
        config.set_main_option("path_separator", "newline")
    else:
        config = Config(str(ini))
    scripts = ScriptDirectory.from_config(config).walk_revisions()
    return sorted(Path(script.path).resolve() for script in scripts)


def test_the_packaged_project(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert sorted(revision_files(None) or []) == alembic_lists(None)


def test_a_scaffolded_project_with_its_own_revisions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    init_project(tmp_path)
    versions = tmp_path / "migrations" / "versions"
    (versions / "2099_01_01_0000-own01_first.py").write_text(
        'revision = "own01"\ndown_revision = None\nbranch_labels = ("app",)\n'
        'depends_on = "7c1f9a2b4d10"\n\ndef upgrade():\n    pass\n\ndef downgrade():\n    pass\n'
    )
    (versions / "__init__.py").write_text("")
    (versions / "notes.txt").write_text("not a revision")

    assert sorted(revision_files(tmp_path / "alembic.ini") or []) == alembic_lists(tmp_path / "alembic.ini")


def test_the_repositorys_project_and_a_copy_with_one_more_revision(alembic_project):
    add_revision(alembic_project, "more01", "pass")
    assert sorted(revision_files(alembic_project) or []) == alembic_lists(alembic_project)
    assert len(file_hashes(alembic_project) or []) == 3


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("version_locations = %(here)s/a, %(here)s/b", ["a", "b"]),  # Alembic's legacy split
        ("version_locations = %(here)s/a;%(here)s/b\npath_separator = ;", ["a", "b"]),
        ("", ["scripts/versions"]),
    ],
)
def test_version_locations_follow_alembics_options(tmp_path, lines, expected):
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = %(here)s/scripts\n{lines}\n")
    assert version_locations(ini) == [tmp_path / name for name in expected]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Alembic's own warning about the legacy split
        listed = Config(str(ini)).get_version_locations_list()
    assert listed is None if not lines else [Path(p) for p in listed or []] == version_locations(ini)


@pytest.mark.parametrize(
    "lines",
    [
        "recursive_version_locations = true",
        "sourceless = true",
        "version_locations = a|b\npath_separator = pipe",
    ],
)
def test_options_only_alembic_interprets_are_left_to_it(tmp_path, lines):
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = scripts\n{lines}\n")
    assert version_locations(ini) is None


def test_an_ini_without_script_location_is_left_to_alembic(tmp_path):
    ini = tmp_path / "alembic.ini"
    ini.write_text("[loggers]\nkeys = root\n")
    assert version_locations(ini) is None
