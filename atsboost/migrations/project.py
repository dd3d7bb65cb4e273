"""The Alembic project a command works on, and ``migrate init``, which writes one for an application.

A project is the ``alembic.ini`` the settings found (ATSBOOST_ALEMBIC_INI, else the
one upward from the current directory), or, with none, atsboost's packaged
project: its own ``env.py`` and every installed schema component's revisions (the
ATSBoost application's), shipped in the wheel.
"""

from __future__ import annotations

import configparser
import shutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from alembic.config import Config
from alembic.script import ScriptDirectory

from atsboost.config.settings import Settings, get_migration_settings
from atsboost.errors import MigrationError, first_line
from atsboost.migrations.components import SchemaComponent, installed
from atsboost.migrations.integrity.sources import packaged_versions
from atsboost.migrations.run.options import OPTIONS_KEY, MigrationOptions

TEMPLATE = Path(__file__).resolve().parent / "template"
SCRIPTS_FOLDER = "migrations"
_PACKAGED = {"script_location": "atsboost.migrations:template", "path_separator": "newline"}


def alembic_config(
    settings: Settings | None = None, options: MigrationOptions | None = None, *, output: TextIO | None = None
) -> Config:
    """Return the Alembic Config of the project, carrying ``options`` for atsboost's env.py."""
    migration = settings.migration if settings is not None else get_migration_settings()
    stdout = output or sys.stdout
    if migration.alembic_ini is None:
        config = Config(stdout=stdout, output_buffer=output)
        for name, value in _PACKAGED.items():
            config.set_main_option(name, value)
        config.set_main_option("version_locations", "\n".join(packaged_versions()))
    else:
        config = Config(str(migration.alembic_ini), stdout=stdout, output_buffer=output)
        try:
            config.get_main_option("script_location")  # reads the file: a broken one is named here
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise MigrationError(
                f"{migration.alembic_ini} is not an Alembic ini file ({type(exc).__name__}); point "
                "ATSBOOST_ALEMBIC_INI at your project's alembic.ini, or unset it"
            ) from None
    config.attributes[OPTIONS_KEY] = options or MigrationOptions(settings=settings)
    return config


def script_directory(config: Config) -> ScriptDirectory:
    """Return the project's revisions, every file loaded: one that cannot be imported is named here."""
    scripts = ScriptDirectory.from_config(config)
    try:
        scripts.get_heads()  # builds the revision map, importing every revision file
    except Exception as exc:
        folders = [Path(location).resolve() for location in scripts.version_locations or [scripts.dir]]
        frames = traceback.extract_tb(exc.__traceback__)
        files = [
            f.filename for f in frames if any(Path(f.filename).resolve().is_relative_to(d) for d in folders)
        ]
        where = f"{files[-1]} " if files else "a revision file "
        raise MigrationError(
            f"{where}cannot be loaded ({type(exc).__name__}: {first_line(exc)}); install what it imports, "
            "or fix the file"
        ) from exc
    return scripts


def is_packaged(config: Config) -> bool:
    """Tell whether the config is atsboost's packaged project, not an application's own."""
    return config.config_file_name is None


def init_project(directory: Path, *, components: Sequence[SchemaComponent] | None = None) -> list[Path]:
    """Write an application's Alembic project into ``directory``; return the files written.

    ``alembic.ini``, ``migrations/env.py`` (calling atsboost's environment),
    ``migrations/script.py.mako`` and ``migrations/versions/``. The project includes
    ``components`` (by default every installed schema, the ATSBoost application's
    among them; ``()`` for none). Nothing is overwritten: an existing ``alembic.ini``
    or ``migrations/`` stops it first.
    """
    root = directory.resolve()
    scripts = root / SCRIPTS_FOLDER
    for existing in (root / "alembic.ini", scripts):
        if existing.exists():
            raise MigrationError(
                f"{existing} already exists, so nothing was written; run `atsboost-db migrate init` in "
                "another folder (migrate init DIR), or move it away first"
            )
    if root.exists() and not root.is_dir():
        raise MigrationError(f"{root} is a file, not a folder; name a folder for the project")
    listed = installed() if components is None else components
    ini = (TEMPLATE / "alembic.ini").read_text(encoding="utf-8")
    files = {
        root / "alembic.ini": ini.replace("{components}", "".join(f"    {c.versions}\n" for c in listed)),
        scripts / "env.py": (TEMPLATE / "env.py").read_text(encoding="utf-8"),
        scripts / "script.py.mako": (TEMPLATE / "script.py.mako").read_text(encoding="utf-8"),
    }
    try:
        (scripts / "versions").mkdir(parents=True)
        for target, text in files.items():
            target.write_text(text, encoding="utf-8")
    except OSError as exc:
        # Leave nothing half-written: remove what this call created.
        shutil.rmtree(scripts, ignore_errors=True)
        (root / "alembic.ini").unlink(missing_ok=True)
        raise MigrationError(
            f"cannot write the project into {root} ({exc.strerror}); check the folder"
        ) from exc
    return [*files, scripts / "versions"]
