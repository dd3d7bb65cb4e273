"""How atsboost chooses libpq's ``sslmode`` (and CA file) for the environment.

Precedence: ``DATABASE_DISABLE_SSL=true`` gives ``disable``; else an ``sslmode``
written in ``DATABASE_URL`` is kept; else ``DATABASE_SSL`` (default true in
production, and wherever ``DATABASE_SSL_ROOT_CERT`` is set) gives ``require``, or
``verify-full`` with the CA file; else libpq's default. Weak choices in production
are warned about, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from atsboost.config.environment import Environment
from atsboost.config.envvars import EnvironmentVariables
from atsboost.errors import ConfigurationError

if TYPE_CHECKING:
    from atsboost.config.urls import ConnectionURL

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
WEAK_SSL_MODES = frozenset({"disable", "allow", "prefer"})


@dataclass(frozen=True)
class SSLSettings:
    """The libpq ``sslmode`` to use (None: libpq's own default) and why."""

    mode: str | None
    root_cert: str | None
    origin: str


def resolve_ssl(
    env: EnvironmentVariables,
    environment: Environment,
    url: ConnectionURL | None,
    url_mode: str | None,
    url_root_cert: str | None,
    warnings: list[str],
) -> SSLSettings:
    """Choose libpq's sslmode: DATABASE_DISABLE_SSL, else the URL's sslmode, else DATABASE_SSL.

    Production warnings are appended to ``warnings``.
    """
    production = environment is Environment.PRODUCTION
    root_cert = _root_cert(env.text("DATABASE_SSL_ROOT_CERT"), "DATABASE_SSL_ROOT_CERT")
    root_cert = root_cert or _root_cert(url_root_cert, "sslrootcert in DATABASE_URL")
    if env.boolean("DATABASE_DISABLE_SSL", default=False):
        if production:
            warnings.append(
                "DATABASE_DISABLE_SSL=true in production: the database connection is NOT "
                "encrypted; unset DATABASE_DISABLE_SSL unless the network path is private"
            )
        return SSLSettings("disable", None, "DATABASE_DISABLE_SSL=true")
    if url_mode is not None:
        if production and url_mode in WEAK_SSL_MODES:
            warnings.append(
                f"sslmode={url_mode} in DATABASE_URL in production: the connection may be "
                "unencrypted; use sslmode=require or verify-full"
            )
        return SSLSettings(url_mode, root_cert, "sslmode in DATABASE_URL")
    return _from_database_ssl(env, environment, url, root_cert, warnings)


def _from_database_ssl(
    env: EnvironmentVariables,
    environment: Environment,
    url: ConnectionURL | None,
    root_cert: str | None,
    warnings: list[str],
) -> SSLSettings:
    """Choose from DATABASE_SSL (on by default in production or with a CA file) and the CA file."""
    production = environment is Environment.PRODUCTION
    explicit = env.text("DATABASE_SSL") is not None
    # A CA file means verification, in every environment: prefer would accept any server.
    if not env.boolean("DATABASE_SSL", default=production or root_cert is not None):
        if root_cert is not None:
            raise ConfigurationError(
                "DATABASE_SSL=false, but DATABASE_SSL_ROOT_CERT names a CA to verify the server with; "
                "unset DATABASE_SSL to verify (sslmode=verify-full), or unset DATABASE_SSL_ROOT_CERT"
            )
        if production:
            warnings.append(
                "DATABASE_SSL=false in production: libpq's default (prefer) may connect without "
                "encryption; unset DATABASE_SSL, or set sslmode in DATABASE_URL deliberately"
            )
        origin = "DATABASE_SSL=false" if explicit else f"DATABASE_SSL unset in {environment.value}"
        return SSLSettings(None, None, origin)
    if url is None:
        raise ConfigurationError(
            "an encrypted connection is asked for (DATABASE_SSL=true or DATABASE_SSL_ROOT_CERT), but "
            "DATABASE_URL is unset and the embedded development server has no SSL; set DATABASE_URL, "
            "or unset DATABASE_SSL and DATABASE_SSL_ROOT_CERT"
        )
    origin = "DATABASE_SSL=true" if explicit else "production default" if production else "a CA file"
    if root_cert is not None:
        return SSLSettings(
            "verify-full", root_cert, f"{origin} with a CA file" if explicit or production else origin
        )
    return SSLSettings("require", None, origin)


_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


def _root_cert(value: str | None, where: str) -> str | None:
    if value is None or value == "system":
        return value
    path = Path(value).expanduser()
    try:
        pem = _PEM_CERTIFICATE in path.read_bytes()[:1_000_000]
    except OSError:
        raise ConfigurationError(
            f"{where} names {value!r}, which is not a readable file; point it at your server's "
            "CA certificate (PEM), or unset it"
        ) from None
    if not pem:
        raise ConfigurationError(
            f"{where} names {value!r}, which holds no PEM certificate (-----BEGIN CERTIFICATE-----), the "
            "only form libpq reads; convert a DER file with: openssl x509 -inform der -in FILE -out ca.pem"
        )
    return str(path.resolve())
