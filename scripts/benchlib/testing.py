"""The pytest plugin against the conftest a team would write by hand, on the same 200 tests.

Each test inserts three rows and reads them back through an ORM Session. The
hand-written conftest is SQLAlchemy's documented recipe for test suites: one engine
on a database migrated beforehand (not timed), and per test a connection, a
transaction, a Session joined with ``join_transaction_mode="create_savepoint"``,
rolled back afterwards; it runs with ``-p no:atsboost``. The plugin's suite uses
``db_session`` and no conftest. Each figure is a whole ``pytest`` process's wall
time. Inside the process, ``benchlib.pytest_clock`` times each test's phases: the
first test's set-up is where the plugin prepares the database ("plugin time"; the
hand-written suite opens its engine's first connection there), and the set-up plus
teardown of the other tests is what the fixtures cost per test. The run that
migrates afresh does so on a project of its own, so that the reused variants reuse.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from benchlib.common import Row, interleave, rows_from

MODELS = """
from sqlalchemy import Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
"""

REVISION = '''"""items"""
import sqlalchemy as sa
from alembic import op

revision = "b0b0b0b0b0b0"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("items", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text))


def downgrade():
    op.drop_table("items")
'''

TEST = """
import pytest
from sqlalchemy import func, select

from bench_models import Item


@pytest.mark.parametrize("n", range({tests}))
def test_insert_and_read(n, {fixture}):
    {fixture}.add_all([Item(name=f"{{n}}-{{i}}") for i in range(3)])
    {fixture}.flush()
    assert {fixture}.scalar(select(func.count()).select_from(Item)) == 3
"""

HAND_CONFTEST = """
import os

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session


@pytest.fixture(scope="session")
def engine():
    engine = create_engine(os.environ["BENCH_HAND_URL"])
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    with engine.connect() as connection:
        transaction = connection.begin()
        with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
            yield session
        transaction.rollback()
"""

PYPROJECT = '[tool.pytest.ini_options]\npythonpath = ["."]\nasyncio_default_fixture_loop_scope = "function"\n'
SCRIPTS = Path(__file__).resolve().parents[1]


def run(url: str, *, tests: int, rounds: int) -> list[Row]:
    """Time the plugin's suite and the hand-written one: reused, migrating afresh, and under xdist."""
    server = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    with tempfile.TemporaryDirectory(prefix="atsboost-bench-testing-") as scratch:
        plugin, fresh, hand = (Path(scratch) / name for name in ("plugin", "fresh", "hand"))
        _project(plugin, tests, "db_session", conftest="")
        _project(fresh, tests, "db_session", conftest="")  # a template of its own, migrated every round
        _project(hand, tests, "session", conftest=HAND_CONFTEST)
        hand_url = _migrated_database(server, hand)
        env = {**os.environ, "ATSBOOST_TEST_DATABASE_URL": server, "BENCH_HAND_URL": hand_url}
        env.pop("DATABASE_URL", None)
        _pytest(plugin, env, [])  # builds the template: every variant below but one reuses it
        clocks: dict[str, list[dict[str, list[float]]]] = {"plugin": [], "hand-written conftest": []}
        cases: dict[str, Callable[[], float]] = {
            "hand-written conftest": _timed(
                hand, env, ["-p", "no:atsboost"], clocks["hand-written conftest"]
            ),
            "plugin, reused database": _timed(plugin, env, [], clocks["plugin"]),
            "plugin, migrating afresh (--atsboost-create-db)": _timed(fresh, env, ["--atsboost-create-db"]),
            "hand-written conftest, -n 2": _timed(hand, env, ["-p", "no:atsboost", "-n", "2"]),
            "plugin, -n 2": _timed(plugin, env, ["-n", "2"]),
        }
        try:
            figures = interleave(cases, rounds=rounds)
            trips = _round_trips(env, plugin, hand_url)
        finally:
            _drop_databases(server, plugin, fresh, hand)
    names = list(cases)
    serial, parallel = names[:3], names[3:]
    rows = rows_from("testing", {k: figures[k] for k in serial}, baseline=serial[0], unit="ms")
    rows += rows_from("testing", {k: figures[k] for k in parallel}, baseline=parallel[0], unit="ms")
    first = {f"first test's set-up, {k}": [c["setup"][0] * 1000 for c in v] for k, v in clocks.items()}
    rows += rows_from("testing", first, baseline=None, unit="ms")
    fixtures = {
        f"set-up + teardown per test after the first, {k}": [_per_test(c) for c in v]
        for k, v in clocks.items()
    }
    rows += rows_from(
        "testing", fixtures, baseline=f"set-up + teardown per test after the first, {serial[0]}", unit="us"
    )
    rows += [Row("testing", f"round trips per test of one query, {k}", v, "") for k, v in trips.items()]
    return rows


def _round_trips(env: dict[str, str], plugin: Path, hand_url: str) -> dict[str, float]:
    """Count psycopg's waits for the server (one a round trip) per test, in this process: no noise."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    from atsboost.config.testing import read_test_settings
    from atsboost.testing.database import open_database
    from atsboost.testing.databases import Run, server_settings

    database = open_database(server_settings(read_test_settings(env, plugin)), plugin, Run("roundtrips"))
    hand_engine = create_engine(hand_url)

    def with_plugin() -> None:
        with database.connection() as conn, Session(bind=conn, join_transaction_mode="create_savepoint") as s:
            s.execute(text("SELECT 1"))

    def by_hand() -> None:
        with hand_engine.connect() as conn:
            transaction = conn.begin()
            with Session(bind=conn, join_transaction_mode="create_savepoint") as s:
                s.execute(text("SELECT 1"))
            transaction.rollback()

    try:
        return {"plugin": _waits(with_plugin), "hand-written conftest": _waits(by_hand)}
    finally:
        database.close()
        hand_engine.dispose()


def _waits(test: Callable[[], None], times: int = 100) -> float:
    test()  # the first connection and the dialect's first queries are not a test's
    profile = cProfile.Profile()
    profile.runcall(lambda: [test() for _ in range(times)])
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    waits = sum(v[1] for k, v in stats.items() if k[2] == "wait" and "psycopg" in k[0])
    return waits / times


def _per_test(clock: dict[str, list[float]]) -> float:
    """The mean set-up plus teardown of the tests after the first, in microseconds."""
    rest = clock["setup"][1:] + clock["teardown"]
    return sum(rest) / (len(clock["setup"]) - 1) * 1e6 if len(clock["setup"]) > 1 else 0.0


def _project(folder: Path, tests: int, fixture: str, *, conftest: str) -> None:
    from atsboost.migrations import init_project

    folder.mkdir()
    init_project(folder, components=[])
    (folder / "bench_models.py").write_text(MODELS)
    env_py = folder / "migrations" / "env.py"
    env_py.write_text(
        env_py.read_text().replace(
            "target_metadata = None", "from bench_models import Base\n\ntarget_metadata = Base.metadata"
        )
    )
    (folder / "migrations" / "versions" / "b0b0b0b0b0b0_items.py").write_text(REVISION)
    (folder / "tests").mkdir()
    (folder / "tests" / "test_items.py").write_text(TEST.format(tests=tests, fixture=fixture))
    (folder / "tests" / "conftest.py").write_text(conftest)
    (folder / "pyproject.toml").write_text(PYPROJECT)


def _migrated_database(server: str, folder: Path) -> str:
    """Create the hand-written suite's database and migrate it (not timed); return its URL."""
    url = make_url(server).set(database="atsboost_bench_hand")
    _drop(server, url.database)
    with psycopg.connect(_libpq(server), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
    rendered = url.render_as_string(hide_password=False)
    env = {**os.environ, "ATSBOOST_ENV": "testing", "DATABASE_URL": rendered}
    subprocess.run(
        [sys.executable, "-m", "atsboost", "migrate"],
        cwd=folder,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return rendered


def _timed(
    folder: Path, env: dict[str, str], args: list[str], clocks: list[dict[str, list[float]]] | None = None
) -> Callable[[], float]:
    def measure() -> float:
        clock = folder / "clock.json"
        timed = {**env, "BENCH_CLOCK_FILE": str(clock), "PYTHONPATH": str(SCRIPTS)}
        started = time.perf_counter()
        _pytest(folder, timed, [*args, "-p", "benchlib.pytest_clock"])
        elapsed = (time.perf_counter() - started) * 1000
        if clocks is not None:
            clocks.append(json.loads(clock.read_text()))
        return elapsed

    return measure


def _pytest(folder: Path, env: dict[str, str], args: list[str]) -> str:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args]
    done = subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"pytest {' '.join(args)} in {folder.name} exited {done.returncode}:\n{done.stdout[-3000:]}"
        )
    return done.stdout


def _drop_databases(server: str, *folders: Path) -> None:
    from atsboost.testing.databases import template_name

    for folder in folders:
        template = template_name(folder.resolve())
        with psycopg.connect(_libpq(server), autocommit=True) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", [template + "%"]
                )
            ]
        for name in names:
            _drop(server, name)
    _drop(server, "atsboost_bench_hand")


def _drop(server: str, name: str | None) -> None:
    with psycopg.connect(_libpq(server), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name or "")))


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
