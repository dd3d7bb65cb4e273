"""A primary and a real streaming standby of the tests' own, on loopback, from the fault tests' binaries.

The standby is made as an operator makes one: ``pg_basebackup -R`` from the primary,
streaming through a physical replication slot. A test may pause its replay, stop it,
and promote it after stopping the primary.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import URL

from tests.conftest import ControlledServer, own_cluster, wait_until

SLOT = "atsboost_standby"


@dataclass
class Replicated:
    """A primary and its standby; both URLs reach the ``postgres`` database as ``postgres``."""

    primary: ControlledServer
    standby: ControlledServer

    def promote(self) -> None:
        """Make the standby a primary (after the primary stopped, as a failover manager would)."""
        self.standby.control("promote")

    def replayed(self, timeout: float = 15.0) -> bool:
        """Wait until the standby has replayed everything the primary has written so far."""
        with connect(self.primary.url) as conn:
            target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]

        def caught_up() -> bool:
            with connect(self.standby.url) as conn:
                row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()
                return bool(row and row[0])

        return wait_until(caught_up, timeout)


def connect(url: URL, database: str | None = None) -> psycopg.Connection:
    """A direct psycopg connection to ``url`` (or another of its databases), autocommit."""
    return psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=database or url.database, autocommit=True
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def replicated_pair(bindir: Path) -> Iterator[Replicated]:
    """Start a primary, stream a standby from it through a slot; stop and remove both afterwards."""
    with own_cluster(bindir, port=free_port()) as primary:
        with connect(primary.url) as conn:
            conn.execute("SELECT pg_create_physical_replication_slot(%s)", (SLOT,))
        with streaming_standby(bindir, primary.url) as standby:
            pair = Replicated(primary, standby)
            assert pair.replayed(), "the standby did not catch up with the primary"
            yield pair


@contextlib.contextmanager
def streaming_standby(bindir: Path, primary: URL) -> Iterator[ControlledServer]:
    """``pg_basebackup -R`` a standby of ``primary`` and start it, on a port of its own."""
    user = "postgres" if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="atsboost-standby-"))
    pgdata, port = directory / "pgdata", free_port()
    if user:
        shutil.chown(directory, user)

    def run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, user=user, timeout=120)

    def control(action: str) -> None:
        if action == "promote":
            run(str(bindir / "pg_ctl"), "-D", str(pgdata), "-w", "promote")
            return
        options = f"-k {pgdata} -h 127.0.0.1 -p {port}"
        log = str(directory / "log")
        run(str(bindir / "pg_ctl"), "-D", str(pgdata), "-l", log, "-w", "-m", "fast", "-o", options, action)

    try:
        run(
            str(bindir / "pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            *("-D", str(pgdata), "-R", "-S", SLOT, "-X", "stream", "-c", "fast"),
        )
        control("start")
        url = URL.create("postgresql+psycopg", "postgres", None, "127.0.0.1", port, "postgres")
        yield ControlledServer(url, control)
        with contextlib.suppress(subprocess.CalledProcessError):
            control("stop")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
