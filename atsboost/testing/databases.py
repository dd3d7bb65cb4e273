"""A project's test databases on one server: a migrated template, and a copy per test process.

The template is migrated with the project's own Alembic project, as a deploy would
(every gate as in testing), and kept between runs: the next run reuses it when the
revision files are exactly the ones it was migrated with (the checksums atsboost
records), and rebuilds it when one was edited, added or removed, or when asked to
(``--atsboost-create-db``, once per run whatever its workers).

Each test process (each pytest-xdist worker) claims a copy, ``CREATE DATABASE ...
TEMPLATE``, in a numbered slot of its own (``<template>_<worker>_<slot>``) by taking a
session advisory lock named after it, held until the process ends: a second run at
the same time takes the next slot, and a run that was killed frees its slot with its
connection. A copy is kept for the next run in its slot while it is a clean copy of
the current template; the label on the database says so, and a test that commits for
real marks it until it is put back.

Processes prepare under one advisory lock per template, taken on the server's
maintenance database, so a template is built once and never copied while it changes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from atsboost.config.settings import Settings
from atsboost.config.testing import TestSettings, for_database
from atsboost.errors import TestDatabaseError
from atsboost.migrations.integrity.current import at_head
from atsboost.migrations.run.locks import lock_key
from atsboost.runtime.diagnosis import database_error
from atsboost.runtime.libpq import direct_connection

logger = logging.getLogger("atsboost.testing")

LOCK_WAIT = 600
"""How long a test process waits (seconds) while another prepares the same template."""


SLOTS = 32
"""How many test processes may hold copies of one template at once."""


@dataclass(frozen=True)
class Run:
    """One test run's process: the run (pytest-xdist's ``testrunuid``), the worker, the options."""

    id: str
    worker: str = "main"
    create: bool = False  # --atsboost-create-db: rebuild the template once in this run


def server_settings(test: TestSettings) -> Settings:
    """Return the settings of the test server's maintenance database, starting the embedded server."""
    if test.server is not None:
        return test.for_server(test.server)
    if importlib.util.find_spec("pgserver") is None:
        raise TestDatabaseError(
            "the tests need a PostgreSQL server: set ATSBOOST_TEST_DATABASE_URL to one on which they may "
            "create databases, or pip install 'atsboost[embedded]' for the embedded one"
        )
    from atsboost.runtime import embedded

    url = embedded.ensure_running(test.embedded().embedded_dir, database="postgres")
    return test.for_server(url.render_as_string(hide_password=False))


def template_name(project_root: Path) -> str:
    """Return the template's name: the project folder's and a hash of its path (checkouts never share)."""
    slug = re.sub(r"[^a-z0-9]+", "_", project_root.name.lower()).strip("_")[:24] or "project"
    digest = hashlib.sha256(str(project_root).encode()).hexdigest()[:6]
    return f"test_{slug}_{digest}"


def connect_admin(server: Settings) -> psycopg.Connection[Any]:
    """Open an autocommit connection to the server's maintenance database."""
    assert server.url is not None
    try:
        conn = direct_connection(server, "test")
    except psycopg.Error as exc:
        raise database_error(server.url, exc) from None
    if conn is None:
        raise TestDatabaseError(
            "the test server's URL names several hosts; give ATSBOOST_TEST_DATABASE_URL one server"
        )
    return conn


@contextmanager
def admin(server: Settings) -> Iterator[psycopg.Connection[Any]]:
    """Open an autocommit connection to the server's maintenance database for the block."""
    with connect_admin(server) as conn:
        yield conn


@contextmanager
def preparing(conn: psycopg.Connection[Any], template: str) -> Iterator[None]:
    """Hold the lock under which test processes build and clone ``template``, waiting LOCK_WAIT at most."""
    key = lock_key(f"atsboost:test-template:{template}")
    conn.execute(f"SET lock_timeout = '{LOCK_WAIT}s'")
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", [key])
    except psycopg.errors.LockNotAvailable:
        raise TestDatabaseError(
            f"another test run has been preparing the test database {template} for {LOCK_WAIT} s; "
            "let it finish (or stop it), then run the tests again"
        ) from None
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", [key])


def exists(conn: psycopg.Connection[Any], name: str) -> bool:
    """Tell whether the database ``name`` exists."""
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def stale_reason(server: Settings, conn: psycopg.Connection[Any], template: str, run: Run) -> str | None:
    """Why the template must be (re)built before this run clones it; None: reuse it."""
    if not exists(conn, template):
        return "there is none yet"
    if run.create and _label_of(conn, template) != _label(run):
        return "--atsboost-create-db"
    if at_head(for_database(server, template)) is None:
        return "a revision file changed, was added or was removed since it was migrated"
    return None


def build(server: Settings, conn: psycopg.Connection[Any], template: str, run: Run, reason: str) -> None:
    """Create ``template`` afresh and migrate it with the project's revisions."""
    from atsboost.migrations.run.queue import upgrade

    logger.info("migrating the test database %s (%s)", template, reason)
    drop(conn, template)
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
    mark(conn, template, _label(run))
    upgrade(for_database(server, template))
    _disconnect(conn, template)  # nobody may be connected to a template that is cloned


def claim(conn: psycopg.Connection[Any], template: str, run: Run) -> str:
    """Claim a slot for this process (its lock is held on ``conn``) and return its copy's name.

    The copy in the slot is kept if it is a clean copy of the current template, else made again.
    """
    oid = _oid(conn, template)
    for slot in range(SLOTS):
        name = f"{template}_{run.worker}_{slot}"
        if not _try_lock(conn, lock_key(f"atsboost:test-database:{name}")):
            continue  # another process holds this slot
        if _label_of(conn, name) != _clean(oid):
            drop(conn, name)
            _copy(conn, template, name)
            mark(conn, name, _clean(oid))
        return name
    raise TestDatabaseError(
        f"{SLOTS} test processes already hold copies of the test database {template}; "
        "let some finish, or run fewer at once"
    )


def mark(conn: psycopg.Connection[Any], name: str, label: str) -> None:
    """Label the database ``name`` (what its copy is, and whether it is clean)."""
    conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(label)))


def in_use(conn: psycopg.Connection[Any], name: str) -> None:
    """Mark the copy ``name`` as not clean: a test commits to it for real until it is put back."""
    mark(conn, name, "atsboost test database, being written to by a test that commits")


def put_back(conn: psycopg.Connection[Any], name: str, template: str) -> None:
    """Mark the copy ``name`` clean again, after it was put back as the template is."""
    mark(conn, name, _clean(_oid(conn, template)))


def _copy(conn: psycopg.Connection[Any], template: str, name: str) -> None:
    """``CREATE DATABASE name TEMPLATE template``."""
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(template)
    )
    try:
        conn.execute(statement)
    except psycopg.errors.ObjectInUse:  # someone connected to the template (a psql, say)
        raise TestDatabaseError(
            f"the test database {template} cannot be copied while another session is connected to it; "
            "close that session (SELECT pid, application_name FROM pg_stat_activity WHERE datname = "
            f"'{template}' names it) and run the tests again"
        ) from None


def _oid(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", [name]).fetchone()
    assert row is not None
    return int(row[0])


def _label_of(conn: psycopg.Connection[Any], name: str) -> str | None:
    row = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [name]
    ).fetchone()
    return None if row is None else row[0]


def _clean(template_oid: int) -> str:
    return f"atsboost test database, a clean copy of template {template_oid}"


def _try_lock(conn: psycopg.Connection[Any], key: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
    return bool(row and row[0])


def drop(conn: psycopg.Connection[Any], name: str) -> None:
    """Drop the database ``name`` if it exists, ending the sessions still connected to it."""
    _disconnect(conn, name)
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _disconnect(conn: psycopg.Connection[Any], name: str) -> None:
    """End every other session on the database ``name``, and wait (10 s at most) until they have exited."""
    query = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()"
    )
    deadline = time.monotonic() + 10
    while conn.execute(query, [name]).fetchall():  # a row for each session it told to end
        if time.monotonic() > deadline:
            raise TestDatabaseError(
                f"sessions on the test database {name} did not end within 10 s of being terminated; "
                "stop what keeps connecting to it and run the tests again"
            )
        time.sleep(0.05)


def _label(run: Run) -> str:
    return f"atsboost test template, built by run {run.id}"
