"""A PostgreSQL server in a network namespace of its own, whose link a test can really cut.

A userspace proxy cannot stand in for a dead network: its kernel still
acknowledges, so TCP keepalives never fire. Here the server sits behind a veth
pair; taking the namespace's end down makes packets vanish, as on a failed-over
cloud endpoint or a changed security group. Needs root (CI runs as root).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

# Each namespace gets a /30 of its own from this range, so that two suites (or xdist workers) may
# each cut a link at the same time.
RANGE = ipaddress.IPv4Network("10.213.0.0/16")


def free_link() -> tuple[str, str]:
    """Pick a /30 in RANGE that no interface here uses; return (host address, server address)."""
    shown = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True, timeout=30, check=True)
    used = {
        ipaddress.ip_interface(word).network
        for word in shown.stdout.split()
        if "/" in word and word[0].isdigit()
    }
    while True:
        subnet = random.choice(list(RANGE.subnets(new_prefix=30)))
        if not any(subnet.overlaps(network) for network in used):
            host, server = list(subnet.hosts())
            return str(host), str(server)


def unavailable_reason() -> str | None:
    """Why a namespaced server cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    missing = [tool for tool in ("ip", "runuser") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not installed (Debian: iproute2, util-linux)" if missing else None


@dataclass
class IsolatedServer:
    """The server's URL, and the switch of its only network link."""

    url: URL
    namespace: str
    device: str
    socket_dir: Path  # the server's Unix socket: a way in that no link carries

    def link(self, *, up: bool) -> None:
        state = "up" if up else "down"
        _run("ip", "netns", "exec", self.namespace, "ip", "link", "set", self.device, state)


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def isolated_server(bindir: Path) -> Iterator[IsolatedServer]:
    """initdb and start a cluster inside a new namespace, on a link of its own; remove it all after."""
    tag = uuid.uuid4().hex[:6]
    host_address, server_address = free_link()
    namespace, host_end, server_end = f"atsb-{tag}", f"vh-{tag}", f"vn-{tag}"
    directory = Path(tempfile.mkdtemp(prefix="atsboost-netns-"))
    shutil.chown(directory, "postgres")
    pgdata = directory / "pgdata"
    as_postgres = ["runuser", "-u", "postgres", "--"]
    in_namespace = ["ip", "netns", "exec", namespace]
    try:
        _run("ip", "netns", "add", namespace)
        _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", server_end)
        _run("ip", "link", "set", server_end, "netns", namespace)
        _run("ip", "addr", "add", f"{host_address}/30", "dev", host_end)
        _run("ip", "link", "set", host_end, "up")
        _run(*in_namespace, "ip", "addr", "add", f"{server_address}/30", "dev", server_end)
        _run(*in_namespace, "ip", "link", "set", server_end, "up")
        _run(*as_postgres, str(bindir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust")
        with (pgdata / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {host_address}/32 trust\n")
        options = f"-k {directory} -h {server_address} -p 5432"
        pg_ctl = [
            str(bindir / "pg_ctl"),
            "-D",
            str(pgdata),
            "-l",
            str(directory / "log"),
            "-w",
            "-o",
            options,
        ]
        _run(*in_namespace, *as_postgres, *pg_ctl, "start")
        url = URL.create("postgresql+psycopg", "postgres", None, server_address, 5432, "postgres")
        yield IsolatedServer(url, namespace, server_end, directory)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            _run(
                *in_namespace,
                *as_postgres,
                str(bindir / "pg_ctl"),
                "-D",
                str(pgdata),
                "-m",
                "immediate",
                "stop",
            )
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "netns", "del", namespace)
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "link", "del", host_end)
        shutil.rmtree(directory, ignore_errors=True)
