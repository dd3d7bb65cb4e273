"""A project's revision files, found and hashed without loading Alembic.

``migrate status`` and ``health`` compare these hashes with those recorded when
each revision was applied (``checksums``): when they match, nothing is pending and
nothing was edited, and Alembic (whose ScriptDirectory imports every revision) is
never loaded. The files are found as Alembic finds them (``Config.get_version_locations_list``,
``Script._list_py_dir``) for the options atsboost's projects use; for anything else
(sourceless or recursive locations, an unknown separator, an unreadable ini) the
answer is None and the caller asks Alembic.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
from importlib import resources
from pathlib import Path

_REVISION_FILE = re.compile(r"(?!\.\#|__init__)(.*\.py)$")  # Alembic's _only_source_rev_file
_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}
_LEGACY_SEPARATOR = re.compile(r", *|(?: +)")  # Alembic's split without a path_separator
_SECTION = "alembic"


def normalised_hash(text: str) -> str:
    """SHA-256 of a text with line endings and trailing spaces made uniform (an editor's doing)."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return hashlib.sha256("\n".join(lines).strip().encode()).hexdigest()


def sql_hash(sql: str) -> str:
    """SHA-256 of rendered SQL, its statements in a fixed order.

    SQLAlchemy renders a table's indexes from a set, so their order changes from one
    process to the next; the statements (Alembic ends each with a blank line) are sorted.
    """
    lines = [line.rstrip() for line in sql.replace("\r\n", "\n").split("\n")]
    statements = sorted(part.strip() for part in "\n".join(lines).split("\n\n") if part.strip())
    return hashlib.sha256("\n\n".join(statements).encode()).hexdigest()


def file_hashes(alembic_ini: Path | None) -> list[str] | None:
    """Return the sorted hashes of the project's revision files; None when only Alembic can list them."""
    files = revision_files(alembic_ini)
    if files is None:
        return None
    return sorted(normalised_hash(path.read_text(encoding="utf-8")) for path in files)


def revision_files(alembic_ini: Path | None) -> list[Path] | None:
    """Return the revision files of the project (atsboost's packaged one for None), as Alembic lists them."""
    locations = version_locations(alembic_ini)
    if locations is None:
        return None
    found: dict[Path, None] = {}  # a file reached through two locations counts once, as in Alembic
    for folder in locations:
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.is_file() and _REVISION_FILE.match(path.name):
                    found.setdefault(path.resolve(), None)
    return list(found)


def version_locations(alembic_ini: Path | None) -> list[Path] | None:
    """Return the folders Alembic reads revisions from; None for options it alone interprets."""
    if alembic_ini is None:
        return [_location(location) for location in packaged_versions()]
    parser = configparser.ConfigParser({"here": alembic_ini.absolute().parent.as_posix()})
    try:
        parser.read(alembic_ini, encoding="utf-8")
        options = dict(parser.items(_SECTION)) if parser.has_section(_SECTION) else {}
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    if "script_location" not in options or any(
        options.get(name) == "true" for name in ("sourceless", "recursive_version_locations")
    ):
        return None
    listed = options.get("version_locations")
    if not listed:
        return [_location(options["script_location"]) / "versions"]
    entries = _split(listed, options.get("path_separator") or options.get("version_path_separator"))
    return None if entries is None else [_location(entry) for entry in entries]


def packaged_versions() -> list[str]:
    """Return the version locations of the packaged project: every installed schema component's."""
    from atsboost.migrations.components import installed

    return [component.versions for component in installed()]


def _split(listed: str, separator: str | None) -> list[str] | None:
    if separator is None:
        return _LEGACY_SEPARATOR.split(listed)
    if separator not in _SEPARATORS:
        return None  # Alembic stops with its own message
    return [entry.strip() for entry in listed.split(_SEPARATORS[separator]) if entry]


def _location(entry: str) -> Path:
    """Resolve a folder, or ``package:folder`` inside an installed package, as Alembic does."""
    if Path(entry).is_absolute() or ":" not in entry:
        return Path(entry).absolute()
    package, *parts = entry.split(":")
    return Path(str(resources.files(package).joinpath(*parts))).absolute()
