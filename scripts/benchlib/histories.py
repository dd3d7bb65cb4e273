"""A public history, as a team brings it: MLflow's 67 revisions, migrated by atsboost and by plain Alembic.

The revisions run in the environment the tests build for them (tests/histories.py):
atsboost's wheel with mlflow-skinny. ATSBOOST_TEST_HISTORIES_PYTHON names one already
built (CI's); else one is built first, which takes a minute and is not timed. Each
figure is a whole process's wall time on a database made afresh, with MLflow's first
tables created from its models as MLflow itself does (not timed).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from benchlib.commands import _recreate
from benchlib.common import Row, interleave, rows_from

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the tests' helpers build and lay out the histories: one copy of that code

from tests import histories  # noqa: E402


def run(url: str, *, rounds: int, quick: bool = False) -> list[Row]:
    """Plain ``alembic upgrade heads`` against ``atsboost-db migrate`` on MLflow's history.

    ``quick`` (CI's smoke run) times the first two variants only: each migrates the whole history.
    """
    history = histories.MLFLOW
    target = make_url(url)
    with tempfile.TemporaryDirectory(prefix="atsboost-bench-history-") as scratch:
        folder = Path(scratch)
        python = histories.environment_python(folder / "venv")
        project = histories.atsboost_project(python, history, folder / "project")
        ini = histories.plain_project(python, history, folder / "plain", target)
        ours = ["-m", "atsboost", "migrate"]
        testing = {"ATSBOOST_ENV": "testing"}
        production = {"ATSBOOST_ENV": "production", "DATABASE_DISABLE_SSL": "true", "MIGRATION_LINT": "error"}
        cases: dict[str, Callable[[], float]] = {
            "alembic upgrade heads (vanilla env.py)": _fresh(
                python, history, target, ["-m", "alembic", "-c", str(ini), "upgrade", "heads"], {}, ini.parent
            ),
            "atsboost-db migrate (testing: lint warns)": _fresh(
                python, history, target, ours, testing, project
            ),
            "atsboost-db migrate, MIGRATION_LINT=off": _fresh(
                python, history, target, ours, {**testing, "MIGRATION_LINT": "off"}, project
            ),
            "atsboost-db migrate --force (production, MIGRATION_LINT=error)": _fresh(
                python, history, target, [*ours, "--force"], production, project
            ),
        }
        if quick:
            cases = dict(list(cases.items())[:2])
        figures = interleave(cases, rounds=rounds)
    return rows_from("history", figures, baseline="alembic upgrade heads (vanilla env.py)", unit="ms")


def _fresh(
    python: Path, history: histories.History, url: URL, args: list[str], env: dict[str, str], cwd: Path
) -> Callable[[], float]:
    """Time one migration of the whole history onto a new database with MLflow's first tables."""

    def measure() -> float:
        rendered = url.render_as_string(hide_password=False)
        _recreate(rendered)
        histories.prepare(python, history, url)
        started = time.perf_counter()
        done = histories.run(python, args, {**env, "DATABASE_URL": rendered}, cwd)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return seconds * 1000

    return measure
