"""Read replicas: where read-only transactions may go, and for how long a replica may lag.

``DATABASE_REPLICA_URLS`` lists the replicas: comma-separated URLs, or one URL with
libpq's host list (``postgresql://app:pw@replica1:5432,replica2:5432/shop``), which
gives one replica per host with the rest of the URL shared. Each gets a pool of its
own, sized by the same rules as the primary's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from atsboost.config.envvars import EnvironmentVariables
from atsboost.config.urls import ConnectionURL, parse_database_url
from atsboost.errors import ConfigurationError

VARIABLE = "DATABASE_REPLICA_URLS"
# Entries are separated by a comma that a scheme, another comma or the end follows.
_NEXT_URL = re.compile(r"\s*,\s*(?=[A-Za-z][A-Za-z0-9+_]*://|,|$)")
# The user-info and the end of the host list, as atsboost.config.urls reads them.
_USERINFO = re.compile(r"[^:/?#@]*(?::[^@]*)?@")
_AUTHORITY_END = re.compile(r"[/?#]")


@dataclass(frozen=True)
class ReplicaSettings:
    """Read replicas and the rules for using them; no URLs means every read goes to the primary."""

    urls: tuple[ConnectionURL, ...] = ()
    max_lag: float = 10.0  # seconds of replay lag past which a replica is skipped
    sticky_seconds: float = 2.0  # after a write, the same context reads from the primary this long
    check_interval: float = 1.0  # a replica's lag is measured at most this often, per process


def read_replica_settings(env: EnvironmentVariables) -> ReplicaSettings:
    """Read DATABASE_REPLICA_URLS, DATABASE_REPLICA_MAX_LAG and DATABASE_REPLICA_STICKY_SECONDS."""
    raw = env.text(VARIABLE)
    urls = tuple(parse_database_url(one, VARIABLE).url for one in split_replica_urls(raw)) if raw else ()
    return ReplicaSettings(
        urls=urls,
        max_lag=env.seconds("DATABASE_REPLICA_MAX_LAG", 10.0, minimum=0.0),
        sticky_seconds=env.seconds("DATABASE_REPLICA_STICKY_SECONDS", 2.0, minimum=0.0),
        check_interval=env.seconds("DATABASE_REPLICA_CHECK_INTERVAL", 1.0, minimum=0.05, maximum=60.0),
    )


def split_replica_urls(raw: str) -> list[str]:
    """Split comma-separated URLs, and a URL with a host list into one URL per host."""
    found: list[str] = []
    for url in _NEXT_URL.split(raw.strip()):
        found.extend(_per_host(url.strip()) if url.strip() else [""])
    if not found or not all(found):
        raise ConfigurationError(
            f"{VARIABLE} holds an empty entry; list replica URLs separated by commas, e.g. "
            "postgresql://USER:PASSWORD@replica1:5432/DBNAME,postgresql://USER:PASSWORD@replica2:5432/DBNAME"
        )
    return found


def _per_host(url: str) -> list[str]:
    """``scheme://info@h1:p1,h2:p2/rest`` as one URL per host; any other URL as it is."""
    scheme, separator, rest = url.partition("://")
    info = _USERINFO.match(rest) if separator else None
    start = info.end() if info else 0
    end = _AUTHORITY_END.search(rest, start)
    hosts = rest[start : end.start() if end else len(rest)]
    if not separator or "," not in hosts:
        return [url]
    head, tail = rest[:start], rest[start + len(hosts) :]
    return [f"{scheme}://{head}{host.strip()}{tail}" for host in hosts.split(",")]
