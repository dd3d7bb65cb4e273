"""One translation of a database failure into what an operator reads: the reason, and what to change.

Every command, ``alembic`` under atsboost's env.py and ``startup()`` use it, so a
wrong password, a host that is down, a missing database, an SSL refusal, a full
server or a missing privilege reads the same everywhere: one line, the masked
URL, the setting to change. It also says which failures will not go away by
waiting (``permanent``), so start-up stops retrying them at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from atsboost.config.urls import ConnectionURL
from atsboost.errors import AtsboostError, DatabaseRefusedError, first_line

_CHECK_URL = "check that the server is running and that DATABASE_URL (host, port, user, password) is right"

# (a SQLSTATE or words of the message: a failed connection often has no SQLSTATE; the fix; permanent?)
_ADVICE = (
    (
        "unsupported startup parameter: options",
        "the server is a pooler (such as PgBouncer) that refuses the options startup parameter, which "
        "DATABASE_STATEMENT_TIMEOUT and DATABASE_URL's options need: set DATABASE_POOL_MODE=transaction "
        "behind a transaction pooler, or add options to the pooler's ignore_startup_parameters",
        True,
    ),
    (
        "server does not support SSL",
        "the server does not accept SSL connections, but SSL is required (DATABASE_SSL, on by default in "
        "production, or sslmode in DATABASE_URL): enable ssl on the server, or, on a private network "
        "only, set DATABASE_DISABLE_SSL=true",
        True,
    ),
    (
        "does not match host name",
        "the server's certificate is not for the host in DATABASE_URL: connect with the host name the "
        "certificate names (not an IP address or an alias)",
        True,
    ),
    (
        "certificate verify failed",
        "the server's certificate is not signed by the CA in DATABASE_SSL_ROOT_CERT: point "
        "DATABASE_SSL_ROOT_CERT at your server's CA file (your provider's CA bundle)",
        True,
    ),
    (
        "root certificate file",
        "verifying the server needs its CA file: set DATABASE_SSL_ROOT_CERT to it",
        True,
    ),
    (
        ("28P01", "password authentication failed"),
        "the password was refused: fix the user or password in DATABASE_URL",
        True,
    ),
    (
        ("28000", "no pg_hba.conf entry", "is not permitted to log in"),
        "the server refused this user or host (pg_hba.conf): fix the user in DATABASE_URL, or ask for "
        "access from this host",
        True,
    ),
    (
        _MISSING_DATABASE := ("3D000", r'database "[^"]*" does not exist'),
        "the database does not exist: create it (createdb NAME), or fix its name in DATABASE_URL",
        True,
    ),
    (
        ("53300", "too many connections", "remaining connection slots"),
        "the server has no connection slot left (max_connections): lower DATABASE_POOL_SIZE or the number "
        "of processes, or put PgBouncer in front; `atsboost-db config --connect` shows the arithmetic",
        False,
    ),
    (
        ("42501", "permission denied"),
        "the role in DATABASE_URL lacks a privilege this needs: grant it, or connect as the schema's owner",
        True,
    ),
)
_CONNECTING_CLASSES = ("08", "28", "3D", "53")

if TYPE_CHECKING:  # SQLAlchemy's URL and errors are read, never needed: a psycopg-only command passes its own
    from sqlalchemy.engine import URL


@dataclass(frozen=True)
class Diagnosis:
    """What went wrong, what to change, and whether waiting could help."""

    reason: str
    advice: str
    permanent: bool = False
    connecting: bool = False


def diagnose(exc: Exception) -> Diagnosis:
    """Read a driver error: the first line of its reason, the matching advice, whether it is permanent.

    ``exc`` is psycopg's error, or SQLAlchemy's DBAPIError that wraps it as ``orig``.
    """
    driver_error = getattr(exc, "orig", None) or exc
    full = str(driver_error).strip()
    code = getattr(driver_error, "sqlstate", None) or ""
    operational = isinstance(driver_error, psycopg.OperationalError)
    connecting = operational and (code == "" or code[:2] in _CONNECTING_CLASSES)
    for signs, advice, permanent in _ADVICE:
        if _matches(signs, code, full):
            return Diagnosis(first_line(exc), advice, permanent=permanent, connecting=connecting)
    advice = _CHECK_URL if connecting else ""
    return Diagnosis(first_line(exc), advice, permanent=False, connecting=connecting)


def database_missing(exc: Exception) -> bool:
    """Tell whether the server refused a connection because its database does not exist."""
    driver_error = getattr(exc, "orig", None) or exc
    code = getattr(driver_error, "sqlstate", None) or ""
    return _matches(_MISSING_DATABASE, code, str(driver_error))


def _matches(signs: str | tuple[str, ...], code: str, message: str) -> bool:
    """Match a bare string as words of the message, a tuple as (SQLSTATE, regular expressions...)."""
    if isinstance(signs, str):
        return signs in message
    state, *patterns = signs
    return state == code or any(re.search(pattern, message) for pattern in patterns)


def database_error(url: URL | ConnectionURL, exc: Exception) -> AtsboostError:
    """Return the error to raise for a driver error: reason and fix, the URL masked, never the password."""
    found = diagnose(exc)
    reason = found.reason.replace(str(url.password), "***") if url.password else found.reason
    where = url.masked() if isinstance(url, ConnectionURL) else url.render_as_string(hide_password=True)
    if found.connecting:
        from atsboost.runtime.unreachable import DatabaseUnreachableError  # SQLAlchemy loads only here

        return DatabaseUnreachableError(f"cannot connect to {where}: {reason}; {found.advice}")
    advice = f"; {found.advice}" if found.advice else ""
    return DatabaseRefusedError(f"the database at {where} refused: {reason}{advice}")
