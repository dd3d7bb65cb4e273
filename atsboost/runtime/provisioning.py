"""Create an application's database when it does not exist yet, as Rails' ``db:prepare`` does.

``atsboost-db init`` calls it before migrating. It connects as the settings say
(``DATABASE_MIGRATION_URL``, else ``DATABASE_URL``); when the server answers that the
database does not exist, it connects to the same server's maintenance database as the
same role and runs ``CREATE DATABASE``, which the role may do if it has CREATEDB (or is
a superuser). The embedded development server makes its database itself.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import psycopg
from psycopg import sql

from atsboost.config.settings import Settings
from atsboost.config.urls import ConnectionURL
from atsboost.errors import DatabaseRefusedError
from atsboost.runtime.diagnosis import database_error, database_missing
from atsboost.runtime.libpq import direct_connection

logger = logging.getLogger("atsboost.runtime.provisioning")

_MAINTENANCE = ("postgres", "template1")  # where a server lets a role connect to create a database


def create_if_missing(settings: Settings) -> str | None:
    """Create the settings' database if the server says it does not exist; return its name, else None."""
    url = settings.migration_url or settings.url
    if url is None or url.database is None:
        return None
    try:
        conn = direct_connection(settings, "init", url)
    except psycopg.Error as exc:
        if not database_missing(exc):
            raise database_error(url, exc) from None
    else:  # it exists (or the URL names several hosts: the migration says what it finds)
        if conn is not None:
            conn.close()
        return None
    _create(settings, url, url.database)
    event = {"event": "database_created"}
    logger.info("created the database %s: it did not exist", url.database, extra=event)
    return url.database


def _create(settings: Settings, url: ConnectionURL, name: str) -> None:
    with _maintenance(settings, url) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege:
            raise DatabaseRefusedError(
                f"the database {name} does not exist and the role {url.username or 'connecting'} may not "
                f"create it; create it as an administrator (CREATE DATABASE {name} OWNER "
                f"{url.username or 'the_role'}), or give the role CREATEDB"
            ) from None
        except psycopg.errors.DuplicateDatabase:
            pass  # another process created it in the meantime: as good


def _maintenance(settings: Settings, url: ConnectionURL) -> Any:
    """Connect to the server's maintenance database as the same role (postgres, else template1)."""
    for database in _MAINTENANCE:
        try:
            conn = direct_connection(settings, "init", dataclasses.replace(url, database=database))
        except psycopg.Error as exc:
            if database_missing(exc):
                continue
            raise database_error(url, exc) from None
        assert conn is not None  # one host: the first connection attempt said so
        return conn
    raise DatabaseRefusedError(
        f"the database {url.database} does not exist, and neither does postgres or template1 to create "
        "it from; create it as an administrator"
    )
