"""Database URLs: parsed once, checked, and with every secret where SQLAlchemy masks it.

libpq accepts a password in the user-info (``user:secret@host``) or as query
parameters: ``password=``, ``sslpassword=`` (a client key's) and, from libpq 18,
``oauth_client_secret=``. SQLAlchemy masks only the first when it prints a URL
(reprs, logs, errors), so the query forms are moved: ``password`` into the
user-info, the others into a mapping that is never printed and goes straight to
the driver. A raw URL is never echoed in a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from atsboost.config.sslmode import SSL_MODES
from atsboost.errors import ConfigurationError

DRIVER = "postgresql+psycopg"
_SCHEMES = frozenset({"postgres", "postgresql", DRIVER})
SECRET_PARAMETERS = ("sslpassword", "oauth_client_secret")  # libpq's secret options besides password
_EXPECTED = "expected postgresql://USER:PASSWORD@HOST:5432/DBNAME"


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL: SSL parameters apart, secrets where they are masked."""

    url: URL
    ssl_mode: str | None = None
    root_cert: str | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)


def parse_database_url(raw: str, variable: str) -> DatabaseURL:
    """Parse ``raw`` (the value of ``variable``); a message says what is wrong without echoing it."""
    _refuse_unencoded(raw, variable)
    try:
        url = make_url(raw)
    except ValueError:
        raise ConfigurationError(f"{variable} has a port that is not a number; {_EXPECTED}") from None
    except ArgumentError:
        raise ConfigurationError(f"{variable} could not be parsed as a URL; {_EXPECTED}") from None
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
    url = url.difference_update_query(names).set(drivername=DRIVER)
    if password is not None:
        url = url.set(password=password)
    secrets = {name: value for name, value in zip(SECRET_PARAMETERS, secret_values, strict=True) if value}
    return DatabaseURL(url, mode, root_cert, secrets)


def _single(url: URL, name: str, variable: str) -> str | None:
    value = url.query.get(name)
    if isinstance(value, tuple):
        raise ConfigurationError(f"{variable} repeats {name}; give it once")
    return value


def _refuse_unencoded(raw: str, variable: str) -> None:
    """Refuse user-info whose password holds an unencoded '@' or '/': the host would be misread."""
    if "://" not in raw:
        return
    authority = raw.split("://", 1)[1].split("?", 1)[0]
    at = authority.rfind("@")
    if at == -1:
        return
    if authority.count("@") > 1 or "/" in authority[:at]:
        raise ConfigurationError(
            f"{variable} has an '@' or '/' in its user name or password that is not percent-encoded, so "
            "the host cannot be told apart; encode them (@ as %40, / as %2F, : as %3A), e.g. with "
            "python -c \"import urllib.parse, sys; print(urllib.parse.quote(sys.argv[1], safe=''))\" PASSWORD"
        )
