"""Benchmarks: atsboost against what users would pick instead, side by side, on one server.

    python scripts/bench.py                      # full run (about 15 minutes)
    python scripts/bench.py --quick              # smoke run (CI): the same cases, fewer rounds
    python scripts/bench.py --cases overhead,latency

Variants of a case run in the same rounds, in rotated order; each figure is the
median over rounds with its range, and each ratio is taken round by round.

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
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import psycopg
from benchlib import (
    aio_contention,
    aio_overhead,
    commands,
    contention,
    health,
    histories,
    latency,
    overhead,
    recovery,
    testing,
)
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
            unknown = set(args.cases) - set(CASES)
            if unknown:
                raise SystemExit(
                    f"unknown case(s): {', '.join(sorted(unknown))}; choose from {', '.join(CASES)}"
                )
            rows = _run_all(url, quick=quick, cases=args.cases)
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


CASES = (
    "overhead",
    "latency",
    "contention",
    "asyncio-overhead",
    "asyncio-contention",
    "recovery",
    "start-up",
    "migrations",
    "history",
    "health",
    "testing",
)


def _run_all(url: str, *, quick: bool, cases: tuple[str, ...]) -> list[Row]:
    runs = {
        "overhead": lambda: overhead.run(url, iterations=50 if quick else 250, rounds=2 if quick else 60),
        "latency": lambda: latency.run(
            url,
            iterations=20 if quick else 200,
            rounds=2 if quick else 5,
            delays=(0.001,) if quick else (0.0, 0.001, 0.005),
        ),
        "contention": lambda: contention.run(url, seconds=0.5 if quick else 3.0, rounds=1 if quick else 5),
        "asyncio-overhead": lambda: aio_overhead.run(
            url, iterations=50 if quick else 250, rounds=2 if quick else 40
        ),
        "asyncio-contention": lambda: aio_contention.run(
            url, seconds=0.5 if quick else 5.0, rounds=1 if quick else 5
        ),
        "recovery": lambda: recovery.run(before=0.5 if quick else 1.0, after=1.5 if quick else 3.0),
        "start-up": lambda: commands.startup(url, rounds=1 if quick else 11),
        "migrations": lambda: commands.migrations(url, rounds=1 if quick else 7),
        "history": lambda: histories.run(url, rounds=1 if quick else 7, quick=quick),
        "health": lambda: health.run(url, tables=200 if quick else 20000, repeats=3 if quick else 11),
        "testing": lambda: testing.run(url, tests=5 if quick else 200, rounds=1 if quick else 11),
    }
    rows: list[Row] = []
    for case in cases:
        print(f"running {case} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        rows += runs[case]()
        print(f"ran {case} in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return rows


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run, numbers are rough")
    parser.add_argument("--output", type=Path, default=Path("bench-results"), help="where to write the files")
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        type=lambda text: tuple(c for c in text.split(",") if c),
        help=f"comma-separated cases to run, of: {', '.join(CASES)} (default: all)",
    )
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
        "| case | variant | median (range) | ratio, median (range) | to | notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        notes = ", ".join(f"{k} {v}" for k, v in r.extra.items())
        spread = f" ({r.low}-{r.high})" if r.low is not None and r.high is not None else ""
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x ({r.ratio_low:.2f}-{r.ratio_high:.2f})"
        cells = [r.case, r.variant, f"{r.median} {r.unit}{spread}", ratio, r.baseline or "", notes]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
