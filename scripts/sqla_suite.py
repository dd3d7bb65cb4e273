"""SQLAlchemy's own dialect compliance suite over SQLAlchemy's psycopg dialect and atsboost's pipelined one.

    python scripts/sqla_suite.py                       # a database made (and dropped) on 127.0.0.1:5432
    python scripts/sqla_suite.py --server postgresql://postgres@host:5432/postgres

SQLAlchemy ships the suite third-party dialects run (``sqlalchemy.testing.suite``,
README.dialects.rst). It runs twice here, with the same requirements (SQLAlchemy's
``SuiteRequirements``) and the same database: once as ``postgresql+psycopg``, once as
``postgresql+atsboost_pipeline`` (DATABASE_PIPELINE_BEGIN). The script prints each
run's counts and every test whose outcome differs; it exits 1 if any does.
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
from sqlalchemy.engine import make_url

DRIVERS = ("postgresql+psycopg", "postgresql+atsboost_pipeline")
DATABASE = "atsboost_sqla_suite"
KEEP = Path(os.environ["SQLA_SUITE_KEEP"]) if os.environ.get("SQLA_SUITE_KEEP") else None

CONFTEST = """\
import pytest
from sqlalchemy.dialects import registry

registry.register("postgresql.atsboost_pipeline", "atsboost.runtime.pipeline", "PipelinedDialect")
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
    server = parser.parse_args().server
    with tempfile.TemporaryDirectory(prefix="atsboost-sqla-suite-") as scratch:
        project = _project(Path(scratch))
        outcomes = {driver: _run(project, server, driver) for driver in DRIVERS}
    return _report(outcomes)


def _project(folder: Path) -> Path:
    """Lay out the suite as README.dialects.rst describes."""
    (folder / "test").mkdir()
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "setup.cfg").write_text(SETUP_CFG)
    (folder / "test" / "test_suite.py").write_text("from sqlalchemy.testing.suite import *  # noqa: F403\n")
    return folder


def _run(project: Path, server: str, driver: str) -> dict[str, str]:
    """Run the suite as ``driver`` on a new database; return each test's outcome."""
    _recreate(server)
    url = make_url(server).set(drivername=driver, database=DATABASE)
    report = project / f"{driver.replace('+', '_')}.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0", f"--dburi={url.render_as_string(False)}"]
    done = subprocess.run([*command, f"--junitxml={report}"], cwd=project, capture_output=True, text=True)
    print(f"{driver}: {done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]}")
    try:
        return _outcomes(report)
    finally:
        _drop(server)
        if KEEP:
            (KEEP / report.name).write_text(report.read_text())


def _outcomes(report: Path) -> dict[str, str]:
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        suite = str(case.get("classname")).split("_postgresql+")[0]  # the class is named after the driver
        outcomes[f"{suite}::{case.get('name')}"] = kinds[0] if kinds else "passed"
    return outcomes


def _report(outcomes: dict[str, dict[str, str]]) -> int:
    stock, ours = (outcomes[driver] for driver in DRIVERS)
    differ = sorted(name for name in stock.keys() | ours.keys() if stock.get(name) != ours.get(name))
    for driver in DRIVERS:
        counts: dict[str, int] = {}
        for outcome in outcomes[driver].values():
            counts[outcome] = counts.get(outcome, 0) + 1
        print(f"{driver}: {len(outcomes[driver])} tests, {counts}")
    print(f"{len(differ)} tests differ" + (":" if differ else ""))
    for name in differ:
        print(f"  {name}: {stock.get(name)} with psycopg, {ours.get(name)} pipelined")
    return 1 if differ else 0


def _recreate(server: str) -> None:
    _drop(server)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    with psycopg.connect(
        make_url(server).set(database=DATABASE).render_as_string(False), autocommit=True
    ) as conn:
        conn.execute("CREATE SCHEMA test_schema")
        conn.execute("CREATE SCHEMA test_schema_2")


def _drop(server: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


if __name__ == "__main__":
    sys.exit(main())
