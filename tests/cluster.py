"""A real Patroni cluster of the tests' own: etcd, three PostgreSQL nodes, HAProxy.

Each node (Patroni and the PostgreSQL it manages) runs in a network namespace of its
own, joined to the host by a veth pair on a bridge, so a test can cut one node's link
as a cloud network fails. Three etcd members run on the host's end of the bridge, so
a test can take quorum away. HAProxy routes to the leader by Patroni's REST check
(``OPTIONS /primary``), as Patroni's documentation sets it up; a libpq host list is the
other route. Everything is made from Debian's packages (patroni, etcd-server, haproxy)
and the fault tests' PostgreSQL binaries, and removed afterwards, even on failure.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL

from tests.conftest import wait_until
from tests.netns import unavailable_reason as netns_unavailable
from tests.replication import free_port

RANGE = ipaddress.IPv4Network("10.214.0.0/16")  # a /28 per cluster: two suites may run at once
NODES = 3
REST_PORT = 8008
TTL, LOOP_WAIT, RETRY_TIMEOUT = 20, 1, 5  # Patroni's smallest leader key TTL, checked every second
PROGRAMS = {"patroni": "patroni", "patronictl": "patroni", "etcd": "etcd-server", "haproxy": "haproxy"}


def unavailable_reason() -> str | None:
    """Why a cluster cannot be made here, or None (CI installs the packages)."""
    reason = netns_unavailable()
    if reason:
        return reason
    missing = sorted({package for program, package in PROGRAMS.items() if shutil.which(program) is None})
    return f"not installed: {', '.join(missing)} (Debian packages)" if missing else None


def _run(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(args, check=True, capture_output=True, text=True, timeout=timeout)
    return done.stdout


def free_subnet() -> ipaddress.IPv4Network:
    """A /28 in RANGE that no interface here uses."""
    shown = _run("ip", "-o", "-4", "addr")
    used = [ipaddress.ip_interface(w).network for w in shown.split() if "/" in w and w[0].isdigit()]
    while True:
        subnet = random.choice(list(RANGE.subnets(new_prefix=28)))
        if not any(subnet.overlaps(network) for network in used):
            return subnet


@dataclass
class Node:
    """One Patroni-managed PostgreSQL in its own namespace."""

    name: str
    address: str
    namespace: str
    device: str  # the namespace's end of its link
    host_end: str  # the bridge's end
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.directory / "patroni.yml"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def rest(self, path: str, *, method: str = "GET", body: dict[str, object] | None = None) -> object:
        """Call Patroni's REST API on this node (bounded); JSON back, or None when it cannot answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{self.address}:{REST_PORT}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=3) as answer:
                text = answer.read()
        except urllib.error.HTTPError as refused:
            text = refused.read()
        except (OSError, urllib.error.URLError):
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text.decode(errors="replace")

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])


@dataclass
class Cluster:
    """The cluster's nodes, etcd members and HAProxy, and the faults a test can cause."""

    scope: str
    nodes: list[Node]
    etcd: list[subprocess.Popen[bytes]]
    etcd_commands: list[list[str]]
    directory: Path
    haproxy_port: int
    synchronous: bool
    stopped_etcd: set[int] = field(default_factory=set)

    def host_list_url(self, *, attrs: str = "read-write") -> str:
        """The libpq route, as a DATABASE_URL: every node, the first that is ``attrs`` taken."""
        hosts = ",".join(f"{node.address}:5432" for node in self.nodes)
        return f"postgresql://postgres@{hosts}/postgres?target_session_attrs={attrs}"

    def haproxy_url(self) -> URL:
        """The HAProxy route: one address that leads to the current leader."""
        return URL.create("postgresql+psycopg", "postgres", None, "127.0.0.1", self.haproxy_port, "postgres")

    def node_url(self, node: Node) -> URL:
        return URL.create("postgresql+psycopg", "postgres", None, node.address, 5432, "postgres")

    def members(self) -> list[dict[str, object]]:
        """Patroni's view of the members, asked of any node that answers."""
        for node in self.nodes:
            found = node.rest("/cluster")
            if isinstance(found, dict) and isinstance(found.get("members"), list):
                return list(found["members"])
        return []

    def leader(self) -> Node | None:
        names = [
            m["name"] for m in self.members() if m.get("role") == "leader" and m.get("state") == "running"
        ]
        return next((node for node in self.nodes if node.name in names), None)

    def healthy(self) -> bool:
        """A running leader and every other node replicating from it (a synchronous one, in that mode)."""
        members = self.members()
        leaders = [m for m in members if m.get("role") == "leader" and m.get("state") == "running"]
        replicas = [
            m for m in members if m.get("role") != "leader" and m.get("state") in ("running", "streaming")
        ]
        following = [m for m in replicas if isinstance(m.get("lag"), int) and m.get("lag") == 0]
        synchronous = any(m.get("role") == "sync_standby" for m in replicas) or not self.synchronous
        return len(leaders) == 1 and len(following) == len(self.nodes) - 1 and synchronous

    def candidate(self) -> Node:
        """The replica a switchover goes to: the synchronous standby in that mode (the only one allowed)."""
        wanted = "sync_standby" if self.synchronous else "replica"
        names = [m["name"] for m in self.members() if m.get("role") == wanted]
        return next(node for node in self.nodes if node.name in names)

    def switchover(self, candidate: Node) -> str:
        """``patronictl switchover`` to ``candidate``, as an operator does it; its output."""
        leader = self.leader()
        assert leader is not None, "no leader to switch over from"
        said = _run(
            *("patronictl", "-c", str(self.nodes[0].config), "switchover", self.scope),
            *("--leader", leader.name, "--candidate", candidate.name, "--force"),
        )
        assert "Successfully switched over" in said, said
        return said

    def kill_postmaster(self, node: Node) -> None:
        os.kill(node.postmaster_pid(), signal.SIGKILL)

    def link(self, node: Node, *, up: bool) -> None:
        _run("ip", "netns", "exec", node.namespace, "ip", "link", "set", node.device, "up" if up else "down")

    def stop_etcd(self, count: int) -> None:
        """Stop ``count`` etcd members (2 of 3 takes quorum away)."""
        for index in range(count):
            self.etcd[index].kill()
            self.etcd[index].wait(30)
            self.stopped_etcd.add(index)

    def start_etcd(self) -> None:
        for index in sorted(self.stopped_etcd):
            self.etcd[index] = _spawn(self.etcd_commands[index], self.directory / f"etcd{index}.log")
        self.stopped_etcd.clear()


def _spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@contextlib.contextmanager
def patroni_cluster(bindir: Path, *, synchronous: bool) -> Iterator[Cluster]:
    """Start etcd, three Patroni nodes and HAProxy; wait for a leader and two streaming replicas."""
    tag = uuid.uuid4().hex[:6]
    subnet = free_subnet()
    addresses = [str(a) for a in list(subnet.hosts())[: NODES + 1]]
    bridge = f"abr-{tag}"
    directory = Path(tempfile.mkdtemp(prefix="atsboost-patroni-"))
    directory.chmod(0o755)
    nodes = [
        Node(
            f"n{i}", addresses[i + 1], f"atsp-{tag}-{i}", f"vn{i}-{tag}", f"vh{i}-{tag}", directory / f"n{i}"
        )
        for i in range(NODES)
    ]
    processes: list[subprocess.Popen[bytes]] = []
    cluster: Cluster | None = None
    try:
        _bridge(bridge, addresses[0], subnet.prefixlen)
        for node in nodes:
            _namespace(node, bridge, subnet.prefixlen)
        etcd_commands = _etcd_commands(addresses[0], tag, directory)
        etcd = [_spawn(cmd, directory / f"etcd{i}.log") for i, cmd in enumerate(etcd_commands)]
        haproxy_port = free_port()
        cluster = Cluster(f"atsb-{tag}", nodes, etcd, etcd_commands, directory, haproxy_port, synchronous)
        endpoints = [
            cmd[cmd.index("--advertise-client-urls") + 1].removeprefix("http://") for cmd in etcd_commands
        ]
        for node in nodes:
            _patroni_config(node, cluster, endpoints, bindir)
            node.process = _spawn(
                [
                    "ip",
                    "netns",
                    "exec",
                    node.namespace,
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    "patroni",
                    str(node.config),
                ],
                node.directory / "patroni.log",
            )
        processes.append(
            _spawn(["haproxy", "-db", "-f", str(_haproxy_config(cluster))], directory / "haproxy.log")
        )
        if not wait_until(cluster.healthy, timeout=120):
            raise AssertionError(
                f"the Patroni cluster did not come up: {cluster.members()}\n{_logs(cluster)}"
            )
        yield cluster
    finally:
        _tear_down(cluster, nodes, processes, bridge, directory)


def _bridge(bridge: str, address: str, prefix: int) -> None:
    _run("ip", "link", "add", bridge, "type", "bridge")
    _run("ip", "addr", "add", f"{address}/{prefix}", "dev", bridge)
    _run("ip", "link", "set", bridge, "up")


def _namespace(node: Node, bridge: str, prefix: int) -> None:
    inside = ["ip", "netns", "exec", node.namespace]
    _run("ip", "netns", "add", node.namespace)
    _run("ip", "link", "add", node.host_end, "type", "veth", "peer", "name", node.device)
    _run("ip", "link", "set", node.device, "netns", node.namespace)
    _run("ip", "link", "set", node.host_end, "master", bridge)
    _run("ip", "link", "set", node.host_end, "up")
    _run(*inside, "ip", "addr", "add", f"{node.address}/{prefix}", "dev", node.device)
    _run(*inside, "ip", "link", "set", node.device, "up")
    _run(*inside, "ip", "link", "set", "lo", "up")
    node.directory.mkdir()
    shutil.chown(node.directory, "postgres", "postgres")


def _etcd_commands(address: str, tag: str, directory: Path) -> list[list[str]]:
    ports = [(free_port(), free_port()) for _ in range(3)]
    peers = ",".join(f"e{i}=http://{address}:{peer}" for i, (_, peer) in enumerate(ports))
    return [
        [
            *("etcd", "--name", f"e{i}", "--data-dir", str(directory / f"etcd{i}")),
            *("--listen-client-urls", f"http://{address}:{client}"),
            *("--advertise-client-urls", f"http://{address}:{client}"),
            *("--listen-peer-urls", f"http://{address}:{peer}"),
            *("--initial-advertise-peer-urls", f"http://{address}:{peer}"),
            *("--initial-cluster", peers, "--initial-cluster-state", "new"),
            *("--initial-cluster-token", f"atsboost-{tag}"),
        ]
        for i, (client, peer) in enumerate(ports)
    ]


def _patroni_config(node: Node, cluster: Cluster, endpoints: list[str], bindir: Path) -> None:
    """Write the node's patroni.yml (JSON is YAML): trust inside the cluster's own subnet only."""
    subnet = ipaddress.ip_interface(f"{node.address}/28").network
    config = {
        "scope": cluster.scope,
        "namespace": "/atsboost/",
        "name": node.name,
        "restapi": {
            "listen": f"{node.address}:{REST_PORT}",
            "connect_address": f"{node.address}:{REST_PORT}",
        },
        "etcd3": {"hosts": endpoints},
        "bootstrap": {
            "dcs": {
                "ttl": TTL,
                "loop_wait": LOOP_WAIT,
                "retry_timeout": RETRY_TIMEOUT,
                "failsafe_mode": True,
                "synchronous_mode": cluster.synchronous,
                "postgresql": {
                    "use_pg_rewind": True,
                    "parameters": {"wal_log_hints": "on", "max_connections": 200},
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"auth": "trust"}],
            "pg_hba": [f"host replication postgres {subnet} trust", f"host all all {subnet} trust"],
        },
        "postgresql": {
            "listen": f"{node.address}:5432",
            "connect_address": f"{node.address}:5432",
            "data_dir": str(node.data),
            "bin_dir": str(bindir),
            "pgpass": str(node.directory / "pgpass"),
            "authentication": {
                "superuser": {"username": "postgres"},
                "replication": {"username": "postgres"},
                "rewind": {"username": "postgres"},
            },
            "parameters": {"unix_socket_directories": str(node.directory)},
        },
    }
    node.config.write_text(json.dumps(config, indent=1))
    shutil.chown(node.config, "postgres", "postgres")


def _haproxy_config(cluster: Cluster) -> Path:
    servers = "\n".join(
        f"    server {node.name} {node.address}:5432 check port {REST_PORT}" for node in cluster.nodes
    )
    path = cluster.directory / "haproxy.cfg"
    path.write_text(
        f"""global
    maxconn 1000
defaults
    mode tcp
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 2s
listen primary
    bind 127.0.0.1:{cluster.haproxy_port}
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
{servers}
"""
    )
    return path


def _logs(cluster: Cluster) -> str:
    tails = []
    for node in cluster.nodes:
        log = node.directory / "patroni.log"
        if log.exists():
            tails.append(f"--- {node.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
    return "\n".join(tails)


def _tear_down(
    cluster: Cluster | None,
    nodes: list[Node],
    processes: list[subprocess.Popen[bytes]],
    bridge: str,
    directory: Path,
) -> None:
    """Stop everything started, whatever state the test left it in; remove the links and files."""
    for node in nodes:
        _kill(node.process)
    for node in nodes:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            for pid in _run("ip", "netns", "pids", node.namespace).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        for removal in (["ip", "netns", "del", node.namespace], ["ip", "link", "del", node.host_end]):
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                _run(*removal)  # the veth pair goes with the namespace, unless it never got there
    for process in [*(cluster.etcd if cluster else []), *processes]:
        _kill(process)
    with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
        _run("ip", "link", "del", bridge)
    time.sleep(0.1)
    shutil.rmtree(directory, ignore_errors=True)


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(30)
