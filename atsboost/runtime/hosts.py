"""The hosts of a multi-host DATABASE_URL, each asked on its own: primary or standby, and on which timeline.

Without SQLAlchemy, so ``atsboost-db health`` can list them (``runtime.fencing``
decides from the same answers which primary to write to).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from atsboost.config.settings import Settings
from atsboost.errors import first_line

PROBE = """
SELECT (SELECT system_identifier FROM pg_control_system())::text, pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END
"""
PROBE_CONNECT_TIMEOUT = 2  # seconds a host may take to answer a probe


@dataclass(frozen=True)
class Node:
    """What one host of the list said when it was last asked."""

    address: str  # host:port
    primary: bool | None = None  # None: not reachable
    timeline: int | None = None
    system: str | None = None
    error: str | None = None

    def describe(self) -> dict[str, Any]:
        """Return the node as a plain dict (``health`` and ``config --connect`` list it)."""
        role = "unreachable" if self.primary is None else "primary" if self.primary else "standby"
        return {"host": self.address, "role": role, "timeline": self.timeline, "error": self.error}


def addresses(settings: Settings) -> list[str]:
    """Return the ``host:port`` of each host a multi-host DATABASE_URL names (none for one host)."""
    url = settings.url
    hosts = url.query.get("host") if url is not None else None
    return list(hosts) if isinstance(hosts, tuple) else []


def probe(settings: Settings, address: str) -> Node:
    """Ask one host of the list what it is, on a connection of its own (2 s to connect at most)."""
    from atsboost.runtime.libpq import side_args
    from atsboost.runtime.poolers import OptionsFallback

    assert settings.url is not None
    url = settings.url.one_host(address)
    parameters = url.libpq() or {}
    parameters.pop("target_session_attrs", None)  # a standby answers too: its role is the question
    args = side_args(settings, "primary-check", pooled=False, connect_timeout=PROBE_CONNECT_TIMEOUT, url=url)
    connect = OptionsFallback(settings).connect
    try:
        with connect(lambda given: psycopg.connect(**given, autocommit=True), {**parameters, **args}) as conn:
            return read(conn, address)
    except psycopg.Error as error:
        return Node(address, error=first_line(error))


def read(conn: Any, address: str) -> Node:
    """Ask one open psycopg connection (sync) what it is."""
    row = conn.execute(PROBE).fetchone()
    return Node(address, primary=not row[1], timeline=row[2], system=row[0])
