"""Test harness: every test that touches a database talks to a real PostgreSQL.

The server is atsboost's own pytest plugin's (``atsboost.testing.plugin``): with
ATSBOOST_TEST_DATABASE_URL set to a superuser URL, that server; by default an
embedded one, started here in the run's own folder. pytest-postgresql's
no-process fixtures give each test that asks for ``postgresql`` a database of its
own, cloned from an empty template; the plugin's fixtures (``db_session``) give a
test the migrated database in a transaction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from pytest_postgresql import factories
from sqlalchemy.engine import URL, Engine

from atsboost.cli import cli
from atsboost.config.settings import Settings, load_settings
from atsboost.config.testing import TestSettings, read_test_settings
from atsboost.runtime import embedded
from atsboost.runtime.engine import create_engine
from tests import histories

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Server:
    """Connection details of the test server, in the shape pytest-postgresql reads."""

    host: str
    port: int
    user: str
    password: str | None
    maintenance_dbname: str
    options: str = ""
    # Per-test databases come from a template that pytest-postgresql builds from this one.
    template_dbname: str = "template0"

    def url(self, dbname: str) -> URL:
        """Return a SQLAlchemy URL (TCP or Unix socket) for one database of this server."""
        if self.host.startswith("/"):
            query = {"host": self.host, "port": str(self.port)}
            return URL.create("postgresql+psycopg", self.user, self.password, database=dbname, query=query)
        return URL.create("postgresql+psycopg", self.user, self.password, self.host, self.port, dbname)


_OWN_BASETEMP = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Give a run without --basetemp a temporary folder of its own, removed when it ends.

    pytest's default folder is shared by every run of the same user and keeps the
    last three: a second suite running at once would delete the first one's
    embedded server. xdist's workers get folders inside the one chosen here.
    Before any test starts, a histories' environment .ci/run is still building is
    waited for: the build would take the CPUs from the tests.
    """
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = config.stash[_OWN_BASETEMP] = tempfile.mkdtemp(prefix="atsboost-tests-")
    given = os.environ.get(histories.PYTHON_VARIABLE)
    if given and not hasattr(config, "workerinput"):
        histories.built(Path(given))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's own temporary folder, whether the tests passed or not."""
    folder = config.stash.get(_OWN_BASETEMP, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _sys_path_restored() -> Iterator[None]:
    """Alembic puts each test project's folder on sys.path (prepend_sys_path): take it off again.

    Left there, sys.path grows by hundreds of folders, and every import that fails (httpcore
    looks for trio on each request) then searches them all.
    """
    saved = list(sys.path)
    yield
    sys.path[:] = saved


@pytest.fixture(scope="session")
def atsboost_test_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestSettings]:
    """The plugin's test settings, with the embedded server in this run's own folder, stopped at the end.

    A project's tests share its development server in ``.atsboost/``; this suite owns its server.
    """
    directory = tmp_path_factory.mktemp("embedded-server")
    settings = read_test_settings({**os.environ, "ATSBOOST_EMBEDDED_DIR": str(directory)}, REPO)
    try:
        yield settings
    finally:
        if settings.server is None:
            embedded.stop(directory)


@pytest.fixture(scope="session")
def pg_server(atsboost_test_server: Settings) -> Server:
    """The server the session tests against: the plugin's (ATSBOOST_TEST_DATABASE_URL, else embedded)."""
    url = atsboost_test_server.url
    assert url is not None
    return Server(
        host=url.host or str(url.query.get("host", "/var/run/postgresql")),
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        maintenance_dbname=url.database or "postgres",
    )


def skip_without_extension(server: Server, name: str, needed_by: str) -> None:
    """Skip when the server lacks a contrib extension (pgserver is built without contrib).

    CI's second run, on a server with contrib, runs the test.
    """
    admin = server.url(server.maintenance_dbname).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False)) as conn:
        available = conn.execute(
            "SELECT count(*) FROM pg_available_extensions WHERE name = %s", (name,)
        ).fetchone()
    if not available or not available[0]:
        pytest.skip(
            f"this PostgreSQL has no {name} extension (pgserver is built without contrib), and {needed_by} "
            "creates it; CI's second run, on a server with contrib, runs this test"
        )


postgresql_noproc = factories.postgresql_noproc(depends_on="pg_server", dbname="atsboost_test")
postgresql = factories.postgresql("postgresql_noproc")


@pytest.fixture
def database_url(pg_server: Server, postgresql: object) -> URL:
    """URL of this test's own, freshly created database."""
    info = postgresql.info  # type: ignore[attr-defined]
    return pg_server.url(info.dbname)


@pytest.fixture
def environ(database_url: URL) -> dict[str, str]:
    """A testing environment pointing at this test's database.

    ``DATABASE_PIPELINE_BEGIN`` passes through: the whole suite can run with BEGIN
    pipelined (``DATABASE_PIPELINE_BEGIN=true pytest``).
    """
    flag = os.environ.get("DATABASE_PIPELINE_BEGIN")
    pipelined = {"DATABASE_PIPELINE_BEGIN": flag} if flag else {}
    return {
        "ATSBOOST_ENV": "testing",
        "DATABASE_URL": database_url.render_as_string(hide_password=False),
        **pipelined,
    }


@pytest.fixture
def role_settings(database_url: URL) -> Iterator[dict[str, str]]:
    """Role names of this test's own (DATABASE_*_ROLE); the roles, if made, go when it ends."""
    from tests.roles import drop_roles, role_names

    found = role_names()
    yield found
    drop_roles(database_url, list(found.values()))


@pytest.fixture
def least_privilege(environ: dict[str, str], database_url: URL) -> Iterator[dict[str, str]]:
    """The test's database as production runs it: DATABASE_URL the application role, migrations the owner.

    The roles are the test's own (``tests.roles``), made by ``atsboost-db roles --apply``'s function.
    """
    from tests.roles import least_privilege as setup

    with setup(environ, database_url) as env:
        yield env


@pytest.fixture
def make_settings(environ: dict[str, str]) -> Callable[..., Settings]:
    """Build settings from the test environment plus overrides (variable=value)."""

    def make(**overrides: str) -> Settings:
        return load_settings({**environ, **overrides})

    return make


@pytest.fixture
def make_engine(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Engine]]:
    """Build engines from settings overrides; every one is disposed after the test."""
    engines: list[Engine] = []

    def make(**overrides: str) -> Engine:
        engine = create_engine(make_settings(**overrides))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``atsboost-db`` as a user would: a separate process, in an empty directory."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("ATSBOOST_", "DATABASE_", "NODE_ENV"))
        }
        return subprocess.run(
            [sys.executable, "-m", "atsboost", *args],
            env={**base, **(env or {})},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


def run_loading(args: list[str], env: dict[str, str], cwd: Path) -> tuple[str, int, list[str]]:
    """Run ``atsboost-db ARGS`` in a fresh interpreter; return its output, exit code and which of
    Alembic and SQLAlchemy it loaded (what decides how fast a short command starts)."""
    code = (
        "import sys\nfrom atsboost.cli import cli\n"
        f"try:\n    cli.main({args!r}, prog_name='atsboost-db')\n"
        "except SystemExit as exit:\n"
        "    print('exit', exit.code, ','.join(m for m in ('alembic', 'sqlalchemy') if m in sys.modules))"
    )
    command = [sys.executable, "-c", code]
    out = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    output, _, last = out.stdout.strip().rpartition("\n")
    word, code_, *loaded = last.split(" ")
    assert word == "exit", out.stderr
    return output, int(code_), [m for m in loaded[0].split(",") if m] if loaded else []


OUR_VARIABLES = ("ATSBOOST_", "DATABASE_", "NODE_ENV", "MIGRATION_", "ADMIN_")


@dataclass(frozen=True)
class Outcome:
    """What a user sees of one ``atsboost-db`` run."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Outcome]]:
    """Run ``atsboost-db ARGS`` in-process, in an empty directory, with only the given variables set."""
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run(*args: str, env: dict[str, str] | None = None) -> Outcome:
        cleared: dict[str, str | None] = {k: None for k in os.environ if k.startswith(OUR_VARIABLES)}
        result = CliRunner().invoke(cli, list(args), env={**cleared, **(env or {})}, prog_name="atsboost-db")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Outcome(result.exit_code, result.stdout, result.stderr)

    yield run
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def unused_tcp_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def ca_file_env(tmp_path: Path) -> dict[str, str]:
    """DATABASE_SSL_ROOT_CERT pointing at a CA file that exists."""
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return {"DATABASE_SSL_ROOT_CERT": str(path)}


CATALOG_SQL = """
SELECT format('relation %%s %%s', c.relkind, c.relname) AS item FROM pg_class c
  WHERE c.relnamespace = 'public'::regnamespace
UNION ALL SELECT format('index %%s valid=%%s %%s',
                        indexrelid::regclass, indisvalid, pg_get_indexdef(indexrelid))
  FROM pg_index WHERE (SELECT relnamespace FROM pg_class WHERE oid = indexrelid) = 'public'::regnamespace
UNION ALL SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
  WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
ORDER BY 1
"""


def catalog(engine: Engine) -> list[str]:
    """Everything in the public schema, plus the recorded revision: a comparable snapshot."""
    with engine.connect() as conn:
        items = list(conn.exec_driver_sql(CATALOG_SQL).scalars())
        if "relation r alembic_version" in items:
            items += [
                f"version {v}"
                for v in conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars()
            ]
    return items


@pytest.fixture
def alembic_project(tmp_path: Path) -> Path:
    """A private copy of alembic.ini and alembic/, so a test can add revisions; returns the ini."""
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "alembic", project / "alembic", ignore=ignore)
    shutil.copytree(
        REPO / "atsboost" / "migrations" / "versions",
        project / "alembic" / "versions",
        ignore=ignore,
        dirs_exist_ok=True,
    )
    ini = (REPO / "alembic.ini").read_text()
    (project / "alembic.ini").write_text(re.sub(r"(?m)^version_locations = .*\n", "", ini))
    return project / "alembic.ini"


def add_revision(ini: Path, revision: str, upgrade: str, downgrade: str = "pass") -> None:
    """Add a revision on top of the current head of the project at ``ini``."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(Config(str(ini))).get_current_head()

    def body(code: str) -> str:
        return textwrap.indent(textwrap.dedent(code).strip(), "    ")

    text = "\n".join(
        [
            f'"""{revision}"""',
            "import sqlalchemy as sa",
            "from alembic import op",
            "",
            f"revision = {revision!r}",
            f"down_revision = {head!r}",
            "branch_labels = None",
            "depends_on = None",
            "",
            "",
            "def upgrade():",
            body(upgrade),
            "",
            "",
            "def downgrade():",
            body(downgrade),
            "",
        ]
    )
    (ini.parent / "alembic" / "versions" / f"2099_01_01_0000-{revision}_test.py").write_text(text)


@dataclass
class ControlledServer:
    """A PostgreSQL of the test's own, which it may restart and stop."""

    url: URL
    control: Callable[[str], object]  # "start", "stop" or "restart"

    def restart(self) -> None:
        self.control("restart")

    def stop(self) -> None:
        self.control("stop")

    def start(self) -> None:
        self.control("start")

    def environ(self, **overrides: str) -> dict[str, str]:
        return {
            "ATSBOOST_ENV": "testing",
            "DATABASE_URL": self.url.render_as_string(hide_password=False),
            **overrides,
        }


@pytest.fixture(scope="module")
def controlled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlledServer]:
    """Faults are caused for real: this server is restarted, stopped and its backends killed.

    By default it is an embedded PostgreSQL; with ATSBOOST_TEST_PG_BINDIR it is a
    cluster started from those binaries (CI points it at the second test server's
    version, so the fault tests run on both versions).
    """
    bindir = os.environ.get("ATSBOOST_TEST_PG_BINDIR")
    if bindir:
        with own_cluster(Path(bindir)) as server:
            yield server
        return
    directory = tmp_path_factory.mktemp("controlled-server")
    url = embedded.ensure_running(directory)
    actions: dict[str, Callable[[Path], object]] = {
        "start": embedded.ensure_running,
        "stop": embedded.stop,
        "restart": embedded.restart,
    }
    try:
        yield ControlledServer(url, lambda action: actions[action](directory))
    finally:
        embedded.stop(directory)


@pytest.fixture
def make_server_engine(controlled_server: ControlledServer) -> Iterator[Callable[..., Engine]]:
    """Build engines on the controlled server from settings overrides; all disposed afterwards."""
    engines: list[Engine] = []

    def make(**overrides: str) -> Engine:
        engine = create_engine(load_settings(controlled_server.environ(**overrides)))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture(scope="module")
def replicated() -> Iterator[Any]:
    """A primary and a real streaming standby (``tests.replication``), for one test module."""
    from tests.replication import replicated_pair

    with replicated_pair(server_binaries()) as pair:
        yield pair


def server_binaries() -> Path:
    """The PostgreSQL binaries for clusters of the tests' own: ATSBOOST_TEST_PG_BINDIR, else pgserver's."""
    given = os.environ.get("ATSBOOST_TEST_PG_BINDIR")
    return Path(given) if given else embedded.binaries()


@contextlib.contextmanager
def own_cluster(
    bindir: Path,
    *,
    port: int | None = None,
    settings: dict[str, str] | None = None,
    files: dict[str, bytes] | None = None,
    password: str | None = None,
) -> Iterator[ControlledServer]:
    """initdb and start a throwaway cluster; as root, as the 'postgres' user (initdb refuses root).

    With ``port`` it listens on 127.0.0.1 too; ``settings`` are server settings (-c);
    ``files`` are written into the cluster's directory, owned by the server's user (keys).
    With ``password``, TCP connections must give it (scram-sha-256); local ones stay trusted.
    """
    user = "postgres" if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="atsboost-cluster-"))
    pgdata = directory / "pgdata"

    def run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, user=user, timeout=120)

    try:
        for name, content in (files or {}).items():
            (directory / name).write_bytes(content)
            (directory / name).chmod(0o600)
        if user:
            for path in [directory, *directory.iterdir()]:
                shutil.chown(path, user)
        auth = ["--auth=trust"]
        if password is not None:
            (directory / "pwfile").write_text(password)
            if user:
                shutil.chown(directory / "pwfile", user)
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={directory / 'pwfile'}"]
        run(str(bindir / "initdb"), "-D", str(pgdata), "-U", "postgres", *auth, "-E", "UTF8")
        listen = f"-h 127.0.0.1 -p {port}" if port else "-h ''"
        extra = " ".join(f"-c {key}={value}" for key, value in (settings or {}).items())

        def control(action: str) -> None:
            options = f"-k {pgdata} {listen} {extra}"
            run(
                str(bindir / "pg_ctl"),
                "-D",
                str(pgdata),
                "-l",
                str(pgdata / "log"),
                "-w",
                "-m",
                "fast",
                "-o",
                options,
                action,
            )

        control("start")
        query = {} if port else {"host": str(pgdata)}
        host = "127.0.0.1" if port else None
        url = URL.create("postgresql+psycopg", "postgres", password, host, port, "postgres", query)
        yield ControlledServer(url, control)
        with contextlib.suppress(subprocess.CalledProcessError):
            control("stop")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def recipe(name: str, doc: str = "runtime.md") -> str:
    """Return the Python block of ``docs/<doc>`` whose first line is ``# name``, to run as written."""
    blocks = (REPO / "docs" / doc).read_text().split("```python\n")[1:]
    found = [block.split("```", 1)[0] for block in blocks if block.startswith(f"# {name}\n")]
    assert len(found) == 1, f"docs/{doc} should hold one block starting '# {name}'"
    return found[0]


def assert_waited_within(caplog: pytest.LogCaptureFixture, *, seconds: float) -> None:
    """Assert that the wait for the database retried, and began no sleep once its budget was spent.

    The deadline, not the clock: each sleep it plans is logged before it starts, so
    all but the last began inside ``seconds`` (on a busy machine the wall clock runs over).
    """
    waits = [r for r in caplog.records if getattr(r, "event", None) == "database_wait"]
    delays: list[float] = [r.__dict__["delay_seconds"] for r in waits]  # set by the log call's extra
    assert delays, "it gave up without waiting"
    assert sum(delays[:-1]) < seconds, delays


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` every 50 ms until it holds or ``timeout`` seconds pass; return the last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
