"""The embedded development PostgreSQL: zero set-up for a laptop, never used in production.

With no ``DATABASE_URL`` in development, atsboost starts (or reuses) a PostgreSQL
from the ``pgserver`` package, whose data lives in a project-local directory. The
server outlives the process that started it, so the next command reuses it in
milliseconds; ``atsboost-db dev-db stop`` stops it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path
from types import ModuleType

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from atsboost.errors import EmbeddedServerError

logger = logging.getLogger(__name__)

DATABASE = "atsboost"
_PGDATA = "pgdata"
_INSTALL_HINT = "set DATABASE_URL to your PostgreSQL server, or install pip install 'atsboost[embedded]'"


def ensure_running(directory: Path, *, database: str = DATABASE) -> URL:
    """Start the embedded server in ``directory`` unless it runs already; return its URL."""
    pgserver = _import_pgserver()
    pgdata = _prepare(directory)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        if _postmaster_pid(pgdata) is None:
            # pgserver caches one server object per directory: after a stop in this same
            # process it would hand the stale one back. Start it again under pgserver's lock.
            with getattr(server, "_lock", contextlib.nullcontext()):
                server.ensure_postgres_running()
    except Exception as exc:
        raise EmbeddedServerError(
            f"the embedded PostgreSQL in {pgdata} did not start ({exc}); its log is "
            f"{pgdata / 'log'}; remove {pgdata} to start from scratch, or set DATABASE_URL"
        ) from exc
    socket_dir = server.get_postmaster_info().socket_dir
    _create_database(socket_dir, database)
    event = {"event": "embedded_in_use", "data_dir": str(pgdata)}
    logger.info("using the embedded PostgreSQL in %s (database %s)", pgdata, database, extra=event)
    return URL.create("postgresql+psycopg", username="postgres", database=database).update_query_dict(
        {"host": str(socket_dir)}
    )


def recreate_database(directory: Path, *, database: str = DATABASE) -> URL:
    """Drop the embedded server's database and create it empty (``atsboost-db dev-db reset``)."""
    url = ensure_running(directory, database=database)
    socket_dir = Path(str(url.query["host"]))
    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    _create_database(socket_dir, database)
    logger.info("dropped and created the embedded database %s", database)
    return url


def is_running(directory: Path) -> bool:
    """Tell whether the embedded server in ``directory`` is running, without starting it."""
    return _postmaster_pid(directory / _PGDATA) is not None


def stop(directory: Path) -> bool:
    """Stop the embedded server in ``directory``; return False if it was not running."""
    pgdata = directory / _PGDATA
    if _postmaster_pid(pgdata) is None:
        return False
    _pg_ctl(pgdata, "stop")
    logger.info("stopped the embedded PostgreSQL in %s", pgdata)
    return True


def restart(directory: Path) -> None:
    """Restart the running embedded server (fast shutdown: open sessions are ended)."""
    pgdata = directory / _PGDATA
    if _postmaster_pid(pgdata) is None:
        raise EmbeddedServerError(f"the embedded PostgreSQL in {pgdata} is not running; nothing to restart")
    _pg_ctl(pgdata, "restart")
    logger.info("restarted the embedded PostgreSQL in %s", pgdata)


def _pg_ctl(pgdata: Path, action: str) -> None:
    pgserver = _import_pgserver()
    user = "pgserver" if os.geteuid() == 0 else None  # pgserver's own rule for running as root
    try:
        pgserver.pg_ctl(["-w", "-m", "fast", action], pgdata=pgdata, user=user)
    except Exception as exc:
        raise EmbeddedServerError(
            f"could not {action} the embedded PostgreSQL in {pgdata} ({exc}); see {pgdata / 'log'}"
        ) from exc


def binaries() -> Path:
    """Return the directory of the PostgreSQL programs pgserver ships (initdb, pg_ctl, psql...)."""
    return Path(str(_import_pgserver().__file__)).parent / "pginstall" / "bin"


def _import_pgserver() -> ModuleType:
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        try:
            import pgserver
        except ImportError:
            raise EmbeddedServerError(
                f"DATABASE_URL is not set and the embedded PostgreSQL is not installed; {_INSTALL_HINT}"
            ) from None
    return pgserver


def _prepare(directory: Path) -> Path:
    """Create the data directory's parent, git-ignored, as pytest does for its cache."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        gitignore = directory / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("# created by atsboost: the embedded PostgreSQL's data\n*\n")
    except OSError as exc:
        raise EmbeddedServerError(
            f"cannot create {directory} for the embedded PostgreSQL ({exc.strerror}); "
            "set ATSBOOST_EMBEDDED_DIR to a writable directory, or set DATABASE_URL"
        ) from exc
    return directory / _PGDATA


def _postmaster_pid(pgdata: Path) -> int | None:
    """Return the running postmaster's pid from postmaster.pid, or None."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except PermissionError:
        return pid  # alive, but owned by another user (the server runs as 'pgserver' under root)
    except (OSError, ValueError):
        return None
    return pid


def _create_database(socket_dir: Path, database: str) -> None:
    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists:
            return
        # Another process may create it first: that is as good.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
