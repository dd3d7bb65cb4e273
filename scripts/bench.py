"""Benchmarks: atsboost against what users would pick instead, side by side, on one server.

    python scripts/bench.py            # full run (a few minutes)
    python scripts/bench.py --quick    # smoke run (CI): the same cases, fewer rounds

On an embedded PostgreSQL started for the run, or on the server of BENCH_DATABASE_URL,
where it works in a database of its own (atsboost_bench, created and dropped here;
nothing else is touched). The recovery case always restarts a private embedded
server. Writes a Markdown table and a JSON file (default: bench-results/).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import psycopg
from benchlib import commands, contention, overhead, recovery
from benchlib.common import Row
from psycopg import sql
from sqlalchemy.engine import make_url

from atsboost.runtime import embedded

DATABASE = "atsboost_bench"


def main() -> int:
    args = _arguments()
    # The recovery case makes atsboost retry on purpose; its WARNING lines are not results.
    logging.basicConfig(level=logging.ERROR)
    quick = args.quick
    with _server() as server_url:
        url = _bench_database(server_url)
        try:
            rows = _run_all(url, quick=quick)
            facts = _facts(url, quick=quick)
        finally:
            _drop(server_url)
    args.output.mkdir(parents=True, exist_ok=True)
    markdown = _markdown(rows, facts)
    (args.output / "bench.md").write_text(markdown)
    (args.output / "bench.json").write_text(
        json.dumps({"facts": facts, "rows": [asdict(r) for r in rows]}, indent=2)
    )
    print(markdown)
    print(f"\nwritten: {args.output / 'bench.md'} and {args.output / 'bench.json'}")
    return 0


def _run_all(url: str, *, quick: bool) -> list[Row]:
    rows: list[Row] = []
    rows += overhead.run(url, iterations=300 if quick else 2000, rounds=3 if quick else 7)
    rows += contention.run(url, seconds=1.0 if quick else 5.0)
    rows += recovery.run(before=0.5 if quick else 1.0, after=1.5 if quick else 3.0)
    rows += commands.migrations(url, repeats=1 if quick else 5)
    rows += commands.startup(url, repeats=2 if quick else 10)
    rows += commands.health(url, repeats=3 if quick else 20)
    return rows


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run, numbers are rough")
    parser.add_argument("--output", type=Path, default=Path("bench-results"), help="where to write the files")
    return parser.parse_args()


@contextlib.contextmanager
def _server() -> Iterator[str]:
    given = os.environ.get("BENCH_DATABASE_URL")
    if given:
        yield make_url(given).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return
    with tempfile.TemporaryDirectory(prefix="atsboost-bench-server-") as scratch:
        url = embedded.ensure_running(Path(scratch))
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            embedded.stop(Path(scratch))


def _bench_database(server_url: str) -> str:
    _drop(server_url)
    with psycopg.connect(_maintenance(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    return make_url(server_url).set(database=DATABASE).render_as_string(hide_password=False)


def _drop(server_url: str) -> None:
    with psycopg.connect(_maintenance(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))


def _maintenance(url: str) -> str:
    return (
        make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    )


def _facts(url: str, *, quick: bool) -> dict[str, object]:
    with psycopg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    ) as conn:
        version = conn.execute("SHOW server_version").fetchone()
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "postgresql": version[0] if version else "unknown",
        "server": "BENCH_DATABASE_URL" if os.environ.get("BENCH_DATABASE_URL") else "embedded (pgserver)",
    }


def _markdown(rows: list[Row], facts: dict[str, object]) -> str:
    lines = [f"- {key}: {value}" for key, value in facts.items()]
    lines += [
        "",
        "| case | variant | median | p99 | unit | ratio | to | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        notes = ", ".join(f"{k} {v}" for k, v in r.extra.items())
        p99 = "" if r.p99 is None else r.p99
        ratio = "" if r.ratio is None else f"{r.ratio}x"
        cells = [r.case, r.variant, r.median, p99, r.unit, ratio, r.baseline or "", notes]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
