"""Least privilege in tests: the test's database set up as production should be, roles of its own.

Roles belong to the whole server, which two suites may share: each test's names are
its own, and the roles (with what they own and were granted) go when the test ends.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import URL

from atsboost.config.settings import load_settings
from atsboost.migrations import roles


def role_names() -> dict[str, str]:
    """Role settings no other test (or suite) uses."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "DATABASE_OWNER_ROLE": f"owner_{suffix}",
        "DATABASE_APP_ROLE": f"app_{suffix}",
        "DATABASE_READONLY_ROLE": f"ro_{suffix}",
    }


def as_role(url: URL, role: str) -> str:
    """The URL of the same database, connecting as ``role`` (the test servers trust local users)."""
    return url.set(username=role, password=None).render_as_string(hide_password=False)


@contextmanager
def least_privilege(environ: dict[str, str], database_url: URL) -> Iterator[dict[str, str]]:
    """Apply the roles as the superuser, then yield the two-URL environment: application and owner."""
    names = role_names()
    admin = {**environ, **names}
    try:
        roles.apply(load_settings(admin))
        yield {
            **admin,
            "DATABASE_URL": as_role(database_url, names["DATABASE_APP_ROLE"]),
            "DATABASE_MIGRATION_URL": as_role(database_url, names["DATABASE_OWNER_ROLE"]),
        }
    finally:
        drop_roles(database_url, list(names.values()))


def drop_roles(database_url: URL, names: list[str]) -> None:
    """Drop the roles and everything they own or were granted in the test's database."""
    admin = database_url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        present = [
            row[0] for row in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,))
        ]
        for name in sorted(present, key=lambda role: role.startswith("owner_")):  # grantees first
            conn.execute(psycopg.sql.SQL("DROP OWNED BY {} CASCADE").format(psycopg.sql.Identifier(name)))
        for name in present:
            conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(name)))


def superuser_warning_only(summary: str) -> bool:
    """Tell whether ``health --check``'s line warns of the superuser connection and of nothing else."""
    return re.fullmatch(r"DATABASE WARNING - role: \w+ is a superuser: [^:]*; \d+ ok\n?", summary) is not None
