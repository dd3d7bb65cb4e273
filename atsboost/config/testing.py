"""Where a project's tests get their databases, read once from the environment.

``ATSBOOST_TEST_DATABASE_URL`` names a server on which the tests may create and
drop databases (a superuser's URL, or a role with CREATEDB); unset, the tests use
the project's embedded PostgreSQL, as development does. Every test database gets
the settings of the testing environment built from the rest of the environment,
never the application's own DATABASE_URL, migration URL or replicas.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from atsboost.config.replicas import VARIABLE as REPLICAS_VARIABLE
from atsboost.config.replicas import ReplicaSettings
from atsboost.config.settings import Settings, load_settings
from atsboost.config.urls import parse_database_url

VARIABLE = "ATSBOOST_TEST_DATABASE_URL"
# What points at the application's own databases: never used by a test.
_NOT_FOR_TESTS = ("ATSBOOST_ENV", "NODE_ENV", "DATABASE_URL", "DATABASE_MIGRATION_URL", REPLICAS_VARIABLE)


@dataclass(frozen=True)
class TestSettings:
    """The server the tests use, and the environment each test database's settings come from."""

    __test__ = False  # not a test class, though its name starts so

    server: str | None = field(repr=False)  # None: the project's embedded PostgreSQL
    project_root: Path
    environ: Mapping[str, str] = field(repr=False)

    def for_server(self, url: str) -> Settings:
        """Return the testing settings aimed at the database of ``url`` (checked as DATABASE_URL is)."""
        environ = {**self.environ, "ATSBOOST_ENV": "testing", "DATABASE_URL": url}
        return load_settings(environ, cwd=self.project_root)

    def embedded(self) -> Settings:
        """Return the development settings, which say where the project's embedded server lives."""
        return load_settings({**self.environ, "ATSBOOST_ENV": "development"}, cwd=self.project_root)


def for_database(settings: Settings, name: str) -> Settings:
    """Return ``settings`` aimed at the database ``name`` of the same server."""
    assert settings.url is not None
    url = dataclasses.replace(settings.url, database=name)
    return dataclasses.replace(settings, url=url, migration_url=None, replicas=ReplicaSettings())


def read_test_settings(environ: Mapping[str, str], project_root: Path) -> TestSettings:
    """Read ATSBOOST_TEST_DATABASE_URL (a bad one fails here, in one line) and keep the rest."""
    raw = (environ.get(VARIABLE) or "").strip()
    if raw:
        parse_database_url(raw, VARIABLE)  # what is wrong with it, named as this variable
    rest = {key: value for key, value in environ.items() if key not in _NOT_FOR_TESTS}
    return TestSettings(raw or None, project_root, rest)
