"""Database URLs: parsed once, checked, and with every secret kept out of what is printed.

libpq accepts a password in the user-info (``user:secret@host``) or as query
parameters: ``password=``, ``sslpassword=`` (a client key's) and, from libpq 18,
``oauth_client_secret=``. The query forms are moved: ``password`` into the
user-info, the others into a mapping that is never printed and goes straight to
the driver. A raw URL is never echoed in a message.

The URL is split with the standard library, the way SQLAlchemy's ``make_url`` splits
it, so reading settings loads neither SQLAlchemy nor the driver: a short command
(``migrate status``, ``health``) starts without them. ``ConnectionURL.sqlalchemy()``
gives SQLAlchemy's URL to code that builds an engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from atsboost.config.parameters import MANAGED, checked
from atsboost.config.sslmode import SSL_MODES
from atsboost.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

DRIVER = "postgresql+psycopg"
_SCHEMES = frozenset({"postgres", "postgresql", DRIVER})
SECRET_PARAMETERS = ("sslpassword", "oauth_client_secret")  # libpq's secret options besides password
_EXPECTED = "expected postgresql://USER:PASSWORD@HOST:5432/DBNAME"
# The user-info as SQLAlchemy's make_url reads it: a password may hold anything but '@'.
_USERINFO = re.compile(r"(?P<user>[^:/?#@]*)(?::(?P<password>[^@]*))?@")
_AUTHORITY_END = re.compile(r"[/?#]")

QueryValue = str | tuple[str, ...]


@dataclass(frozen=True)
class ConnectionURL:
    """A PostgreSQL server and database to connect to; the password is never in its repr."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: Mapping[str, QueryValue] = field(default_factory=dict, hash=False)
    drivername: str = DRIVER
    # libpq parameters atsboost also sets, out of the query: they win over atsboost's (config.parameters)
    parameters: Mapping[str, str] = field(default_factory=dict, hash=False)

    def masked(self) -> str:
        """Render the URL as SQLAlchemy does with ``hide_password=True``: the password as ``***``."""
        text = f"{self.drivername}://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            text += ":***" if self.password is not None else ""
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else self.host
        text += f":{self.port}" if self.port is not None else ""
        text += f"/{self.database}" if self.database is not None else ""
        if self.query:
            text += "?" + "&".join(
                f"{quote_plus(key)}={quote_plus(value)}"
                for key in sorted(self.query)
                for value in _values(self.query[key])
            )
        return text

    def sqlalchemy(self) -> URL:
        """Return the same URL as SQLAlchemy's URL (loads SQLAlchemy), for building an engine."""
        from sqlalchemy.engine import URL

        return URL.create(
            self.drivername, self.username, self.password, self.host, self.port, self.database, self.query
        )

    def one_host(self, address: str) -> ConnectionURL:
        """Return this URL aimed at one host of its list (``host:port``), the rest as it is."""
        host, _, port = address.rpartition(":")
        query = {key: value for key, value in self.query.items() if key != "host"}
        return replace(
            self, host=host or address, port=int(port) if port.isdigit() else self.port, query=query
        )

    def libpq(self) -> dict[str, Any] | None:
        """Return the libpq parameters as SQLAlchemy's dialect passes them; None for a repeated option."""
        if any(isinstance(value, tuple) for value in self.query.values()):
            return None  # several hosts given as ?host=a&host=b: SQLAlchemy's dialect joins those
        parts = {
            "host": self.host,
            "dbname": self.database,
            "user": self.username,
            "password": self.password,
            "port": self.port,
        }
        params: dict[str, Any] = {name: value for name, value in parts.items() if value}  # as the dialect
        params.update(self.query)
        return params


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL: SSL parameters apart, secrets where they are never printed."""

    url: ConnectionURL
    ssl_mode: str | None = None
    root_cert: str | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)


def parse_database_url(raw: str, variable: str) -> DatabaseURL:
    """Parse ``raw`` (the value of ``variable``); a message says what is wrong without echoing it."""
    url = _split(raw, variable)
    if url.drivername not in _SCHEMES:
        raise ConfigurationError(
            f"{variable} uses the scheme {url.drivername!r}, but atsboost works with PostgreSQL "
            "only; use a postgresql:// (or postgres://) URL"
        )
    names = ("sslmode", "sslrootcert", "password", *SECRET_PARAMETERS)
    mode, root_cert, password, *secret_values = (_single(url, name, variable) for name in names)
    if mode is not None and mode not in SSL_MODES:
        raise ConfigurationError(
            f"{variable} has sslmode={mode!r}, which libpq does not know; use one of " + ", ".join(SSL_MODES)
        )
    if password is not None and url.password is not None:
        raise ConfigurationError(
            f"{variable} gives the password twice (user:PASSWORD@ and ?password=); keep one"
        )
    if not url.host and "host" not in url.query:
        raise ConfigurationError(
            f"{variable} names no host, so libpq would connect to whatever listens on its default "
            f"socket; {_EXPECTED} (or ?host=/path/to/socket/folder for a Unix socket)"
        )
    for name in ("target_session_attrs", *MANAGED):
        if (value := _single(url, name, variable)) is not None:
            checked(variable, name, value)
    parameters = {name: str(url.query[name]) for name in MANAGED if name in url.query}
    query = {key: value for key, value in url.query.items() if key not in names and key not in parameters}
    url = replace(
        url, drivername=DRIVER, query=query, password=password or url.password, parameters=parameters
    )
    secrets = {name: value for name, value in zip(SECRET_PARAMETERS, secret_values, strict=True) if value}
    return DatabaseURL(url, mode, root_cert, secrets)


def _split(raw: str, variable: str) -> ConnectionURL:
    """Split a URL into its parts (user-info unquoted, repeated query keys as tuples)."""
    scheme, separator, rest = raw.partition("://")
    if not separator or not scheme or not all(c.isalnum() or c in "+_" for c in scheme):
        raise ConfigurationError(f"{variable} could not be parsed as a URL; {_EXPECTED}")
    user, password, rest = _userinfo(rest, variable)
    rest, hosts = _host_list(rest, variable)
    try:
        parts = urlsplit(f"{scheme}://{rest}")
    except ValueError:  # an unbalanced [ of an IPv6 address
        raise ConfigurationError(f"{variable} could not be parsed as a URL; {_EXPECTED}") from None
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"{variable} has a port that is not a number; {_EXPECTED}") from None
    query: dict[str, QueryValue] = {}
    for key, value in [*(("host", host) for host in hosts), *parse_qsl(parts.query)]:
        query[key] = (*_values(query[key]), value) if key in query else value
    return ConnectionURL(
        username=unquote(user) if user is not None else None,
        password=unquote(password) if password is not None else None,
        host=parts.hostname or None,
        port=port,
        database=parts.path[1:] if parts.path.startswith("/") else None,
        query=query,
        drivername=scheme,
    )


def _host_list(rest: str, variable: str) -> tuple[str, list[str]]:
    """Take libpq's host list (``a:5432,b:5433``) out of the authority, as SQLAlchemy's ``?host=`` form.

    SQLAlchemy's psycopg dialect joins repeated ``host`` parameters into libpq's
    multi-host connection string; with ``target_session_attrs=read-write`` libpq
    finds the primary among them, as after a failover.
    """
    authority = _AUTHORITY_END.split(rest, maxsplit=1)[0]
    if "," not in authority or ":" not in authority:  # h1,h2 without ports: SQLAlchemy passes it on
        return rest, []
    hosts = [host.strip() for host in authority.split(",")]
    ports = [host.rpartition(":")[2] for host in hosts if not host.endswith("]")]
    if not all(port.isdigit() and 0 < int(port) < 65536 for port in ports if port):
        raise ConfigurationError(
            f"{variable} has a host list with a port that is not a number from 1 to 65535; list the "
            "hosts as HOST1:5432,HOST2:5432"
        )
    if not all(hosts) or "host=" in rest[len(authority) :]:
        raise ConfigurationError(
            f"{variable} has a host list with an empty entry, or hosts both before the path and in "
            "?host=; list them once, as HOST1:5432,HOST2:5432"
        )
    return rest[len(authority) :], hosts


def _userinfo(rest: str, variable: str) -> tuple[str | None, str | None, str]:
    """Take ``user:password@`` off the front of what follows ``://`` (a password may hold '?' or '#').

    An '@' or '/' that is not percent-encoded would make the host a guess: refused.
    """
    found = _USERINFO.match(rest)
    head = rest.split("?", 1)[0]
    if found and "/" in (found["password"] or "") and "@" not in head:
        found = None  # host:port/db?...@...: the '@' is in the query, and there is no user-info
    user, password = (found["user"], found["password"]) if found else (None, None)
    after = rest[found.end() :] if found else rest
    path = after.split("?", 1)[0].split("#", 1)[0]  # an '@' past the user-info: a password's, unencoded
    if "@" in path or (found is None and "@" in head) or "/" in (password or ""):
        raise ConfigurationError(
            f"{variable} has an '@' or '/' in its user name or password that is not percent-encoded, so "
            "the host cannot be told apart; encode them (@ as %40, / as %2F, : as %3A), e.g. with "
            "python -c \"import urllib.parse, sys; print(urllib.parse.quote(sys.argv[1], safe=''))\" PASSWORD"
        )
    return user, password, after


def _values(value: QueryValue) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


def _single(url: ConnectionURL, name: str, variable: str) -> str | None:
    value = url.query.get(name)
    if isinstance(value, tuple):
        raise ConfigurationError(f"{variable} repeats {name}; give it once")
    return value
