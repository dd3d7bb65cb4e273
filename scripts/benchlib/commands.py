"""Whole commands, as a deploy runs them: start-up, migrations, and concurrent migrators.

The baseline is vanilla Alembic: a project made by ``alembic init -t generic`` holding
atsboost's own two revisions. Every figure is a whole process's wall time; variants
run in the same rounds, in rotated order.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from benchlib.common import Row, interleave, ratio_row, rows_from

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSIONS = REPO / "atsboost" / "migrations" / "versions"
OURS = str(BIN / "atsboost-db")
ALEMBIC = str(BIN / "alembic")
SQUAWK = str(BIN / "squawk")  # squawk-cli, the lint a team puts before plain Alembic for the same safety
LINTED = "alembic upgrade --sql piped to squawk, then alembic upgrade head (vanilla, linted)"


def startup(url: str, *, rounds: int) -> list[Row]:
    """Commands against a database at head: ours against ``alembic current``."""
    with vanilla_project(url) as project:
        _run([OURS, "migrate"], url)
        cases: dict[str, Callable[[], float]] = {
            "alembic current (vanilla)": _timed([ALEMBIC, "current"], url, cwd=project),
            "atsboost-db migrate status": _timed([OURS, "migrate", "status"], url),
            "atsboost-db health --json": _timed([OURS, "health", "--json"], url),
            "alembic --help": _timed([ALEMBIC, "--help"], url, cwd=project),
            "atsboost-db --help": _timed([OURS, "--help"], url),
        }
        figures = interleave(cases, rounds=rounds)
    return rows_from("start-up", figures, baseline="alembic current (vanilla)", unit="ms")


def migrations(url: str, *, rounds: int) -> list[Row]:
    """Two revisions on an empty database, one migrator and eight at once."""
    with vanilla_project(url) as project:
        cases = {
            "alembic upgrade head (vanilla)": _fresh(
                url, lambda: _run([ALEMBIC, "upgrade", "head"], url, cwd=project)
            ),
            LINTED: _fresh(url, lambda: _squawked_upgrade(project, url)),
            "atsboost-db migrate": _fresh(url, lambda: _run([OURS, "migrate"], url)),
            "atsboost-db migrate, MIGRATION_LINT=off": _fresh(
                url, lambda: _run([OURS, "migrate"], url, MIGRATION_LINT="off")
            ),
            "8 concurrent atsboost-db migrate": _fresh(url, lambda: _concurrently(8, [OURS, "migrate"], url)),
            "8 concurrent atsboost-db migrate status, at head": _at_head(
                url, lambda: _concurrently(8, [OURS, "migrate", "status"], url)
            ),
        }
        figures = interleave(cases, rounds=rounds)
    rows = rows_from("migrations", figures, baseline="alembic upgrade head (vanilla)", unit="ms")
    one_plus_statuses = [
        a + b
        for a, b in zip(
            figures["atsboost-db migrate"],
            figures["8 concurrent atsboost-db migrate status, at head"],
            strict=True,
        )
    ]
    for ours in ("atsboost-db migrate", "atsboost-db migrate, MIGRATION_LINT=off"):
        rows.append(
            ratio_row(
                "migrations", f"{ours}, to plain Alembic linted", figures[ours], figures[LINTED], LINTED
            )
        )
    rows.append(
        ratio_row(
            "migrations",
            "8 concurrent migrate, to 8 concurrent status plus one migrate",
            figures["8 concurrent atsboost-db migrate"],
            one_plus_statuses,
            "8 concurrent status + one migrate",
        )
    )
    return rows


@contextmanager
def vanilla_project(url: str) -> Iterator[Path]:
    """A plain Alembic project (generic template) with atsboost's revisions, aimed at ``url``."""
    with tempfile.TemporaryDirectory(prefix="atsboost-bench-alembic-") as scratch:
        project = Path(scratch)
        subprocess.run(
            [ALEMBIC, "init", "-t", "generic", "alembic"], cwd=project, check=True, capture_output=True
        )
        for revision in VERSIONS.glob("*.py"):
            shutil.copy(revision, project / "alembic" / "versions")
        ini = project / "alembic.ini"
        escaped = make_url(url).render_as_string(hide_password=False).replace("%", "%%")
        lines = [
            f"sqlalchemy.url = {escaped}" if ln.startswith("sqlalchemy.url") else ln
            for ln in ini.read_text().splitlines()
        ]
        ini.write_text("\n".join(lines) + "\n")
        yield project


def _timed(command: list[str], url: str, *, cwd: Path = REPO) -> Callable[[], float]:
    import time

    def measure() -> float:
        started = time.perf_counter()
        _run(command, url, cwd=cwd)
        return (time.perf_counter() - started) * 1000

    return measure


def _fresh(url: str, action: Callable[[], None]) -> Callable[[], float]:
    """A measurement of ``action`` on an emptied database (dropped and created, not timed)."""
    import time

    def measure() -> float:
        _recreate(url)
        started = time.perf_counter()
        action()
        return (time.perf_counter() - started) * 1000

    return measure


def _at_head(url: str, action: Callable[[], None]) -> Callable[[], float]:
    """A measurement of ``action`` on a database brought to head first (not timed)."""
    import time

    def measure() -> float:
        _recreate(url)
        _run([OURS, "migrate"], url)
        started = time.perf_counter()
        action()
        return (time.perf_counter() - started) * 1000

    return measure


def _squawked_upgrade(project: Path, url: str) -> None:
    """Plain Alembic with the lint a team adds for the same safety: the offline SQL through squawk first.

    squawk's verdict is not acted on (its exit status says it found something): the time is the point.
    """
    rendered = subprocess.run(
        [ALEMBIC, "upgrade", "head", "--sql"],
        cwd=project,
        env=_env(url),
        capture_output=True,
        text=True,
        check=True,
    )
    subprocess.run(
        [SQUAWK, "--pg-version", "16"], input=rendered.stdout, capture_output=True, text=True, check=False
    )
    _run([ALEMBIC, "upgrade", "head"], url, cwd=project)


def _concurrently(count: int, command: list[str], url: str) -> None:
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda _: _run(command, url), range(count)))


def _recreate(url: str) -> None:
    parsed = make_url(url)
    maintenance = parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    with psycopg.connect(maintenance, autocommit=True) as conn:
        name = sql.Identifier(parsed.database or "")
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def _run(command: list[str], url: str, *, cwd: Path = REPO, **variables: str) -> None:
    done = subprocess.run(command, cwd=cwd, env={**_env(url), **variables}, capture_output=True, text=True)
    if done.returncode not in (0, 3):  # 3: `migrate status` with revisions pending
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "ATSBOOST_ENV": "testing", "DATABASE_URL": url, "DATABASE_DISABLE_SSL": "true"}
