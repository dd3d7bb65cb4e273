"""The project folder a command runs in: where its Alembic project and embedded server's data live.

Found upward from the current directory, as git and pytest find theirs: the first
folder with an ``alembic.ini``, or failing that with a ``pyproject.toml``. So a
command run from a subfolder uses the same migrations and the same embedded
PostgreSQL as one run from the project's top.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Project:
    """A project's folder, and its ``alembic.ini`` if it has one (else atsboost's packaged migrations)."""

    root: Path
    alembic_ini: Path | None


def find_project(start: Path) -> Project:
    """Return the project that ``start`` lies in; ``start`` itself when no marker is found above it."""
    start = start.resolve()
    for folder in (start, *start.parents):
        ini = folder / "alembic.ini"
        if ini.is_file():
            return Project(folder, ini)
        if (folder / "pyproject.toml").is_file():
            return Project(folder, None)
    return Project(start, None)
