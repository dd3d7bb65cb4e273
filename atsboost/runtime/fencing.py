"""A host list's primaries, checked: write only to the primary on the highest timeline.

libpq's ``target_session_attrs=read-write`` takes the first host of the list that
says it is read-write. After a failover, an old primary that comes back as a primary
(what a failover manager exists to prevent, and what a manual or broken one allows)
also says so: every new process finding it first writes there, while processes that
had moved on write to the new one. Two primaries diverge; nothing warns.

For a ``DATABASE_URL`` with several hosts, a watch probes each host every
``DATABASE_PRIMARY_CHECK_INTERVAL`` seconds (and every new connection as it opens):
its role, its timeline (the first eight hex digits of ``pg_walfile_name``, as
Patroni reads it) and its system identifier. A primary on a lower timeline than
one already seen for the same system, or a second primary, is *fenced*: new
connections skip it, pooled ones to it are dropped at checkout, and those checked
out have their sockets shut, so every write goes to the primary of the highest
timeline (the errors are transient: ``run_transaction`` runs the transaction again
there). Each fencing is one ERROR line naming both hosts, and a counted figure.
Two primaries on the same highest timeline cannot be told apart: both are fenced.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from sqlalchemy import event, exc

from atsboost.config.settings import Settings
from atsboost.runtime.hosts import PROBE, Node, addresses, probe

logger = logging.getLogger("atsboost.runtime.fencing")

STOP_WAIT = 5.0  # seconds a dispose waits for the watch thread to end


def attach(engine: Any, settings: Settings, counted: Callable[[], None]) -> Fence | None:
    """Fence stale primaries on ``engine`` (its sync engine) when DATABASE_URL names several hosts."""
    hosts = addresses(settings)
    if len(hosts) < 2:
        return None
    fence = Fence(settings, hosts, counted=counted)
    fence.install(engine)
    return fence


class Primaries:
    """What this process knows of a host list: the highest timeline seen as primary, and the fenced."""

    def __init__(self, on_fenced: Callable[[str], None] = lambda address: None) -> None:
        self._lock = threading.Lock()
        self._highest: dict[str, tuple[int, str]] = {}  # system -> (timeline, address)
        self._fenced: dict[str, str] = {}  # address -> the primary it lost to
        self._on_fenced = on_fenced
        self.nodes: dict[str, Node] = {}

    def fenced(self) -> set[str]:
        """Return the addresses writes must not go to."""
        with self._lock:
            return set(self._fenced)

    def observe(self, nodes: Iterable[Node]) -> None:
        """Take what hosts said; fence a primary that is stale or one of two."""
        with self._lock:
            for node in nodes:
                self.nodes[node.address] = node
                if node.primary and node.timeline is not None and node.system is not None:
                    best = self._highest.get(node.system)
                    if best is None or node.timeline > best[0]:
                        self._highest[node.system] = (node.timeline, node.address)
            decided = self._decide()
        for address, winner in decided:
            self._fence(address, winner)

    def _decide(self) -> list[tuple[str, str | None]]:
        """Return (address, the primary it lost to, or None for a tie) for each newly stale primary."""
        primaries = [n for n in self.nodes.values() if n.primary and n.timeline is not None]
        found: list[tuple[str, str | None]] = []
        for node in primaries:
            timeline, leader = self._highest[node.system or ""]
            tied = [n for n in primaries if n.system == node.system and n.timeline == timeline]
            if node.timeline is not None and node.timeline < timeline:
                found.append((node.address, leader))
            elif len(tied) > 1:
                found.append((node.address, None))
        for node in self.nodes.values():  # a host now a standby (demoted, rejoined) is fenced no more
            if node.primary is False:
                self._fenced.pop(node.address, None)
        return [(a, w) for a, w in found if a not in self._fenced]

    def _fence(self, address: str, winner: str | None) -> None:
        with self._lock:
            if address in self._fenced:
                return
            self._fenced[address] = winner or ""
            node = self.nodes[address]
        if winner is None:
            reason = f"another host is also a primary on timeline {node.timeline}; neither can be trusted"
        else:
            best = self.nodes[winner]
            reason = f"{winner} is the primary on timeline {best.timeline}"
        logger.error(
            "split brain: %s says it is a primary on timeline %s, but %s; refusing to write to %s",
            address,
            node.timeline,
            reason,
            address,
            extra={"event": "split_brain", "stale_host": address, "primary_host": winner},
        )
        self._on_fenced(address)


class PrimaryWatch:
    """Probe every host of the list every ``interval`` seconds, in a thread, until stopped."""

    def __init__(self, settings: Settings, primaries: Primaries, hosts: list[str]) -> None:
        self._settings = settings
        self._primaries = primaries
        self._hosts = hosts
        self._interval = settings.runtime.primary_check_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def probe_all(self) -> list[Node]:
        """Ask every host now, each on a connection of its own (bounded); tell ``Primaries``."""
        nodes = [probe(self._settings, address) for address in self._hosts]
        self._primaries.observe(nodes)
        return nodes

    def start(self) -> None:
        """Start the thread unless it runs."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="atsboost-primary-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait (a bounded while) until it has ended."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_WAIT)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.probe_all()
            except Exception:  # the watch must never die silently
                logger.exception("primary watch failed")


class Fence:
    """Bind ``Primaries`` and its watch to an engine: skip, drop and cut connections to a fenced host."""

    def __init__(self, settings: Settings, hosts: list[str], *, counted: Callable[[], None]) -> None:
        self.primaries = Primaries(on_fenced=self._cut)
        self.watch = PrimaryWatch(settings, self.primaries, hosts)
        self._counted = counted
        self._engine: Any = None
        self._first = threading.Event()

    def install(self, engine: Any) -> None:
        """Listen on ``engine`` (a sync Engine, or an AsyncEngine's ``sync_engine``)."""
        self._engine = engine
        event.listen(engine, "do_connect", self._skip_fenced)
        event.listen(engine, "engine_disposed", lambda _engine: self.watch.stop())
        event.listen(engine.pool, "connect", self._connected)
        event.listen(engine.pool, "checkout", self._checked_out)

    def _skip_fenced(self, dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        hosts, ports = str(cparams.get("host", "")).split(","), str(cparams.get("port", "")).split(",")
        if len(hosts) < 2 or len(hosts) != len(ports):
            return
        fenced = self.primaries.fenced()
        kept = [(h, p) for h, p in zip(hosts, ports, strict=True) if f"{h}:{p}" not in fenced]
        if kept and len(kept) < len(hosts):
            cparams["host"], cparams["port"] = ",".join(h for h, _ in kept), ",".join(p for _, p in kept)

    def _connected(self, dbapi_connection: Any, record: Any) -> None:
        if not self._first.is_set():  # a new process: ask every host before the first write
            self._first.set()
            self.watch.probe_all()
        self.watch.start()
        address = _address(dbapi_connection)
        if address is not None:
            cursor = dbapi_connection.cursor()
            cursor.execute(PROBE)
            system, standby, timeline = cursor.fetchone()
            cursor.close()
            self.primaries.observe([Node(address, primary=not standby, timeline=timeline, system=system)])

    def _checked_out(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        address = _address(dbapi_connection)
        if address is not None and address in self.primaries.fenced():
            raise exc.DisconnectionError(f"{address} is fenced: a stale primary (split brain)")

    def _cut(self, address: str) -> None:
        """Count a host just fenced, and shut the sockets of connections to it now checked out."""
        from atsboost.runtime.shutdown import in_use
        from atsboost.runtime.sockets import shut_socket

        self._counted()
        for entry in in_use(self._engine.pool) if self._engine is not None else []:
            if _address(entry.dbapi_connection) == address:
                shut_socket(entry.driver_connection)


def _address(dbapi_connection: Any) -> str | None:
    """Return the ``host:port`` a psycopg connection (sync, or SQLAlchemy's async adapter) reached."""
    driver = getattr(dbapi_connection, "driver_connection", dbapi_connection)
    try:
        info = driver.info
        return f"{info.host}:{info.port}"
    except (AttributeError, psycopg.Error):
        return None
