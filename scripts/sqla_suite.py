"""SQLAlchemy's own dialect compliance suite over SQLAlchemy's psycopg dialect and atsboost's pipelined one.

    python scripts/sqla_suite.py                       # a database made (and dropped) on 127.0.0.1:5432
    python scripts/sqla_suite.py --server postgresql://postgres@host:5432/postgres --database name

SQLAlchemy ships the suite third-party dialects run (``sqlalchemy.testing.suite``,
README.dialects.rst). It runs four times here, with the same requirements (SQLAlchemy's
``SuiteRequirements``) and the same server: as ``postgresql+psycopg`` and as
``postgresql+atsboost_pipeline`` (DATABASE_PIPELINE_BEGIN), then as their asyncio
twins (``..._async``). The script prints each run's counts and every test whose outcome
differs within a pair; it exits 1 if any does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

# (SQLAlchemy's, atsboost's): each pair runs the same suite, sync and then asyncio.
PAIRS = (
    ("postgresql+psycopg", "postgresql+atsboost_pipeline"),
    ("postgresql+psycopg_async", "postgresql+atsboost_pipeline_async"),
)
KEEP = Path(os.environ["SQLA_SUITE_KEEP"]) if os.environ.get("SQLA_SUITE_KEEP") else None

CONFTEST = """\
import pytest
from sqlalchemy.dialects import registry

registry.register("postgresql.atsboost_pipeline", "atsboost.runtime.pipeline", "PipelinedDialect")
registry.register("postgresql.atsboost_pipeline_async", "atsboost.runtime.pipeline", "AsyncPipelinedDialect")
import sqlalchemy.dialects.postgresql.provision  # noqa: E402,F401  (a dialect outside SQLAlchemy loads none)
pytest.register_assert_rewrite("sqlalchemy.testing.assertions")

from sqlalchemy.testing.plugin.pytestplugin import *  # noqa: E402,F403
"""
SETUP_CFG = """\
[tool:pytest]
addopts = --tb native -p no:warnings -p no:randomly -p no:cacheprovider -p no:postgresql
python_files = test/test_*.py

[sqla_testing]
requirement_cls = sqlalchemy.testing.requirements:SuiteRequirements
profile_file = test/profiles.txt
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="atsboost_sqla_suite", help="made, and dropped at the end")
    parser.add_argument("--only", choices=("sync", "asyncio"), help="run one pair of the two")
    args = parser.parse_args()
    server, database = args.server, args.database
    pairs = {"sync": PAIRS[:1], "asyncio": PAIRS[1:], None: PAIRS}[args.only]
    differ = 0
    with tempfile.TemporaryDirectory(prefix="atsboost-sqla-suite-") as scratch:
        project = _project(Path(scratch))
        for pair in pairs:
            differ += _report(pair, {driver: _run(project, server, database, driver) for driver in pair})
    return 1 if differ else 0


def _project(folder: Path) -> Path:
    """Lay out the suite as README.dialects.rst describes."""
    (folder / "test").mkdir()
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "setup.cfg").write_text(SETUP_CFG)
    (folder / "test" / "test_suite.py").write_text("from sqlalchemy.testing.suite import *  # noqa: F403\n")
    return folder


def _run(project: Path, server: str, database: str, driver: str) -> dict[str, str]:
    """Run the suite as ``driver`` on a new database; return each test's outcome."""
    _recreate(server, database)
    url = make_url(server).set(drivername=driver, database=database)
    report = project / f"{driver.replace('+', '_')}.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0", f"--dburi={url.render_as_string(False)}"]
    done = subprocess.run([*command, f"--junitxml={report}"], cwd=project, capture_output=True, text=True)
    print(f"{driver}: {done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]}")
    try:
        if not report.exists():
            raise SuiteError(f"the suite did not run as {driver}:\n{(done.stdout + done.stderr)[-4000:]}")
        return _outcomes(report)
    finally:
        _drop(server, database)
        if KEEP:
            (KEEP / report.name).write_text(report.read_text())


def _outcomes(report: Path) -> dict[str, str]:
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        suite = str(case.get("classname")).split("_postgresql+")[0]  # the class is named after the driver
        outcomes[f"{suite}::{case.get('name')}"] = kinds[0] if kinds else "passed"
    return outcomes


def _report(pair: tuple[str, str], outcomes: dict[str, dict[str, str]]) -> int:
    """Print each run's counts and the tests whose outcomes differ; return how many differ."""
    stock, ours = (outcomes[driver] for driver in pair)
    differ = sorted(name for name in stock.keys() | ours.keys() if stock.get(name) != ours.get(name))
    for driver in pair:
        counts: dict[str, int] = {}
        for outcome in outcomes[driver].values():
            counts[outcome] = counts.get(outcome, 0) + 1
        print(f"{driver}: {len(outcomes[driver])} tests, {counts}")
    print(f"{len(differ)} tests differ" + (":" if differ else ""))
    for name in differ:
        print(f"  {name}: {stock.get(name)} with {pair[0]}, {ours.get(name)} with {pair[1]}")
    return len(differ)


def _recreate(server: str, database: str) -> None:
    _drop(server, database)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    target = make_url(server).set(database=database).render_as_string(hide_password=False)
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA test_schema")
        conn.execute("CREATE SCHEMA test_schema_2")


def _drop(server: str, database: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


class SuiteError(Exception):
    """The suite could not run at all (no server, a missing package): said, without a traceback."""


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (SuiteError, psycopg.Error) as error:
        sys.exit(f"sqla_suite: {error}")
