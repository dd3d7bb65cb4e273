"""The libpq parameters atsboost sets, and the one rule that merges a URL's own: the URL's value wins.

Managed providers hand out URLs that carry ``connect_timeout``, ``application_name``,
``keepalives`` and the like, which atsboost also sets. Each such parameter in a URL
is taken out of the URL's query (so it never reaches the driver twice) and wins over
atsboost's value, except where it would break a guarantee: a URL that turns off
keepalives or the TCP user timeout (a dead link would hang a connection forever),
or gives ``connect_timeout=0`` (no bound on connecting), is refused with one line.
``options`` is joined with atsboost's statement timeout, unless it sets one itself.
``sslmode`` and ``sslrootcert`` are read with the SSL settings (config.sslmode);
``target_session_attrs`` is libpq's alone and is passed on, checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from atsboost.errors import ConfigurationError

# Parameters atsboost sets, which a URL may override.
MANAGED = (
    "connect_timeout",
    "application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "options",
)
_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
_BOUNDS = {  # name: (least allowed, why less is refused)
    "connect_timeout": (1, "0 waits for ever to connect"),
    "keepalives": (1, "0 turns off the keepalives that notice a dead link"),
    "keepalives_idle": (1, "it must be a number of seconds"),
    "keepalives_interval": (1, "it must be a number of seconds"),
    "keepalives_count": (1, "it must be a count of probes"),
    "tcp_user_timeout": (1, "0 lets unacknowledged data wait for ever on a dead link"),
}


@dataclass(frozen=True)
class Parameter:
    """One libpq parameter of atsboost's connections, and where its value comes from."""

    name: str
    value: str
    source: str


def checked(variable: str, name: str, value: str) -> str:
    """Return a URL's value for a managed parameter, or refuse it in one line with the fix."""
    if name in _BOUNDS:
        least, why = _BOUNDS[name]
        if not value.isdigit() or int(value) < least:
            raise ConfigurationError(
                f"{variable} has {name}={value!r}, which atsboost cannot keep its bounds with ({why}); "
                f"give a whole number of at least {least}, or remove it and let atsboost set it"
            )
    if name == "application_name" and (len(value) > 63 or not value.isascii() or not value.isprintable()):
        raise ConfigurationError(
            f"{variable} has an application_name PostgreSQL cannot keep (at most 63 printable ASCII "
            "characters); shorten it, or remove it and set DATABASE_APPLICATION_NAME"
        )
    if name == "target_session_attrs" and value not in _SESSION_ATTRS:
        raise ConfigurationError(
            f"{variable} has target_session_attrs={value!r}, which libpq does not know; use one of "
            + ", ".join(_SESSION_ATTRS)
        )
    return value


def connection_parameters(
    defaults: Mapping[str, Parameter], given: Mapping[str, str], variable: str = "DATABASE_URL"
) -> dict[str, Parameter]:
    """Merge a URL's managed parameters (``given``) over atsboost's ``defaults``: the URL's value wins.

    ``options`` is merged setting by setting: the URL's ``-c`` settings win, atsboost's others stay.
    """
    merged = dict(defaults)
    for name, value in given.items():
        source = variable
        if name == "options" and "options" in merged:
            theirs = _settings(value)
            kept = [f"-c {item}" for item in re.findall(r"-c\s*(\S+)", merged["options"].value)]
            kept = [item for item in kept if _setting(item) not in theirs]
            if kept:
                value, source = f"{value} {' '.join(kept)}", f"{variable} + {merged['options'].source}"
        merged[name] = Parameter(name, value, source)
    return merged


def _settings(options: str) -> set[str]:
    """Return the server settings an ``options`` value sets (``-c name=value``, ``--name=value``)."""
    return {_setting(part) for part in re.split(r"(?:^|\s)(?:-c\s*|--)", options) if "=" in part}


def _setting(part: str) -> str:
    return part.removeprefix("-c").strip().split("=", 1)[0].strip().replace("-", "_").lower()


def defaults(
    *,
    application_name: str,
    connect_timeout: int,
    stall_timeout: float,
    statement_timeout_ms: int | None,
    transaction_pooler: bool,
) -> dict[str, Parameter]:
    """Return the parameters atsboost sets from its settings, each with the setting it comes from."""
    stall = "DATABASE_STALL_TIMEOUT"
    found = [
        Parameter("application_name", application_name, "DATABASE_APPLICATION_NAME"),
        Parameter("connect_timeout", str(connect_timeout), "DATABASE_CONNECT_TIMEOUT"),
        # A dead link (a failed-over endpoint, a changed firewall) answers nothing, not even an error:
        # keepalives notice it on an idle socket, tcp_user_timeout when data goes unacknowledged.
        Parameter("keepalives", "1", stall),
        Parameter("keepalives_idle", str(max(1, round(stall_timeout / 3))), stall),
        Parameter("keepalives_interval", str(max(1, round(stall_timeout / 9))), stall),
        Parameter("keepalives_count", "3", stall),
        Parameter("tcp_user_timeout", str(round(stall_timeout * 1000)), stall),
    ]
    # Behind a transaction pooler the timeout is SET LOCAL in each BEGIN instead (poolers refuse options).
    if not transaction_pooler:
        found.append(_server_options(stall_timeout, statement_timeout_ms))
    return {parameter.name: parameter for parameter in found}


def stall_options(stall_timeout: float) -> str:
    """Return the ``options`` value of the server-side dead-link bounds alone (what a pooler may refuse)."""
    return _server_options(stall_timeout, None).value


def _server_options(stall_timeout: float, statement_timeout_ms: int | None) -> Parameter:
    """Return the server's own settings for the session: the dead-link bounds from its side, the timeout.

    A client gone behind a dead link answers nothing: without these the server keeps its
    session (idle, or running a query it cannot deliver) until its operating system's
    keepalive, two hours by default. With them the server ends it within the stall bound,
    running query included (``client_connection_check_interval``, PostgreSQL 14 and later).
    """
    settings = {
        "tcp_keepalives_idle": max(1, round(stall_timeout / 3)),
        "tcp_keepalives_interval": max(1, round(stall_timeout / 9)),
        "tcp_keepalives_count": 3,
        "tcp_user_timeout": round(stall_timeout * 1000),
        "client_connection_check_interval": round(stall_timeout * 1000 / 3),
    }
    sources = ["DATABASE_STALL_TIMEOUT"]
    if statement_timeout_ms is not None:
        settings["statement_timeout"] = statement_timeout_ms
        sources.append("DATABASE_STATEMENT_TIMEOUT")
    value = " ".join(f"-c {name}={number}" for name, number in settings.items())
    return Parameter("options", value, " + ".join(sources))
