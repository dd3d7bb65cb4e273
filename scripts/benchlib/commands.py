"""Whole commands: migrations end to end, start-up of the CLIs, and the health report."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg import sql

from atsboost.config.settings import load_settings
from atsboost.health.collect import report
from atsboost.runtime.engine import create_engine
from benchlib.common import Row

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def migrations(url: str, *, repeats: int) -> list[Row]:
    offline = subprocess.run(
        [str(BIN / "alembic"), "upgrade", "head", "--sql"],
        cwd=REPO,
        env=_env(url),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    psql = shutil.which("psql")

    def ours() -> None:
        _run([str(BIN / "atsboost-db"), "migrate"], url)

    def one_of_eight() -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: _run([str(BIN / "atsboost-db"), "migrate"], url), range(8)))

    rows = [Row("migrations", "atsboost-db migrate, empty database", _fresh(url, ours, repeats), unit="ms")]
    if psql:

        def by_psql() -> None:
            subprocess.run(
                [psql, "-q", "-v", "ON_ERROR_STOP=1", _libpq(url)],
                input=offline,
                text=True,
                check=True,
                capture_output=True,
            )

        rows.append(
            Row("migrations", "psql applying the same offline SQL", _fresh(url, by_psql, repeats), unit="ms")
        )
    rows.append(
        Row(
            "migrations",
            "8 concurrent atsboost-db migrate, empty database",
            _fresh(url, one_of_eight, repeats),
            unit="ms",
        )
    )
    base = rows[1] if psql else rows[0]
    for row in rows:
        row.ratio, row.baseline = round(row.median / base.median, 2), base.variant
    return rows


def startup(url: str, *, repeats: int) -> list[Row]:
    cases = [
        ("atsboost-db --help", [str(BIN / "atsboost-db"), "--help"]),
        ("alembic --help", [str(BIN / "alembic"), "--help"]),
        ("atsboost-db migrate status", [str(BIN / "atsboost-db"), "migrate", "status"]),
        ("alembic current", [str(BIN / "alembic"), "current"]),
    ]
    rows = [
        Row(
            "start-up",
            name,
            _timed(lambda command=command: _run(command, url, check=False), repeats),
            unit="ms",
        )
        for name, command in cases
    ]
    for row, base in ((rows[0], rows[1]), (rows[1], rows[1]), (rows[2], rows[3]), (rows[3], rows[3])):
        row.ratio, row.baseline = round(row.median / base.median, 2), base.variant
    return rows


def health(url: str, *, repeats: int) -> list[Row]:
    engine = create_engine(load_settings({"ATSBOOST_ENV": "testing", "DATABASE_URL": url}))
    try:
        median = _timed(lambda: report(engine), repeats)
    finally:
        engine.dispose()
    return [Row("health report", "atsboost.health.report(engine)", median, unit="ms")]


def _fresh(url: str, action: Callable[[], None], repeats: int) -> float:
    """Median ms of ``action`` on a freshly emptied database (dropped and created each time)."""
    times = []
    for _ in range(repeats):
        _recreate(url)
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def _timed(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def _recreate(url: str) -> None:
    database = _libpq(url).rsplit("/", 1)[1].split("?")[0]
    maintenance = _libpq(url).replace(f"/{database}", "/postgres", 1)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def _run(command: list[str], url: str, *, check: bool = True) -> None:
    subprocess.run(command, cwd=REPO, env=_env(url), capture_output=True, check=check)


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "ATSBOOST_ENV": "testing", "DATABASE_URL": url, "DATABASE_DISABLE_SSL": "true"}


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")
