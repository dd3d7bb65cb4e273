"""Failover figures on a real Patroni cluster, and how long a split brain takes to be fenced.

    python scripts/failover.py                      # both synchronous modes, 3 rounds each
    python scripts/failover.py --rounds 1 --synchronous on
    python scripts/failover.py --split-brain-rounds 5 --rounds 0

Needs root and Debian's patroni, etcd-server and haproxy (what tests/runtime/test_patroni.py
needs). For each of Patroni's ``synchronous_mode`` on and off, a cluster of tests/cluster.py
goes through the four faults of tests/ha.py, ``--rounds`` times, with 8 threads and 100
asyncio tasks writing through HAProxy and through a libpq host list (half on each). Per
fault and route it prints the median and range over rounds of: errors raised to callers,
the longest call, the time from the fault to the first commit of a write begun once it
was caused, and the longest time with no commit; and the totals of acknowledged writes
lost and stored twice, and of failed reads.

The split-brain figure: a primary and its streaming standby; the standby is promoted
while the old primary runs on (two primaries), at a random phase of the primary check;
the delay is from the promotion's end (the standby's first answer out of recovery,
asked every 5 ms) to atsboost's "split brain" ERROR in a process writing through a
host list of both, with ``DATABASE_PRIMARY_CHECK_INTERVAL`` at its default (2 s) and
at 0.5 s.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import URL  # noqa: E402

from atsboost.config.settings import load_settings  # noqa: E402
from atsboost.runtime.database import Database  # noqa: E402
from tests import ha  # noqa: E402
from tests.cluster import patroni_cluster, unavailable_reason  # noqa: E402
from tests.conftest import server_binaries, wait_until  # noqa: E402
from tests.replication import Replicated, connect, replicated_pair  # noqa: E402


def spread(values: list[float]) -> str:
    """Median and range, as docs/benchmarks.md writes them."""
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def failovers(synchronous: bool, rounds: int) -> list[str]:
    """Run every fault ``rounds`` times on one cluster; return the table's rows."""
    runs: dict[tuple[str, str], list[ha.Outcome]] = {}
    with patroni_cluster(server_binaries(), synchronous=synchronous) as cluster:
        for number in range(rounds):
            for name in ha.SCENARIOS:
                outcomes = ha.under_load(cluster, ha.scenario(cluster, name))
                for route, outcome in outcomes.items():
                    runs.setdefault((name, route), []).append(outcome)
                    print(f"# round {number + 1}, {name}, {route}: {outcome.summary()}", file=sys.stderr)
    mode = "on" if synchronous else "off"
    return [row(mode, name, route, outcomes) for (name, route), outcomes in runs.items()]


def row(mode: str, name: str, route: str, outcomes: list[ha.Outcome]) -> str:
    firsts = [o.first_commit for o in outcomes if o.first_commit is not None]
    return (
        f"| {mode} | {name} | {route} | {spread([float(len(o.errors)) for o in outcomes])} "
        f"| {spread([o.longest_call for o in outcomes])} | {spread(firsts)} "
        f"| {spread([o.longest_gap for o in outcomes])} | {sum(o.acknowledged for o in outcomes)} "
        f"| {sum(o.lost for o in outcomes)} | {sum(o.duplicated for o in outcomes)} "
        f"| {sum(len(o.read_errors) for o in outcomes)} |"
    )


def split_brain_delay(interval: float) -> float:
    """Promote a standby under a writing process; seconds from the promotion to the ERROR line."""
    seen: list[float] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("split brain"):
                seen.append(time.monotonic())

    catcher = Catch()
    logging.getLogger("atsboost.runtime.fencing").setLevel(logging.ERROR)
    logging.getLogger("atsboost.runtime.fencing").addHandler(catcher)
    try:
        with replicated_pair(server_binaries()) as pair:
            return _promote_under_writes(pair, interval, seen)
    finally:
        logging.getLogger("atsboost.runtime.fencing").removeHandler(catcher)


def _promote_under_writes(pair: Replicated, interval: float, seen: list[float]) -> float:
    old, new = pair.primary.url, pair.standby.url
    with connect(old) as conn:
        conn.execute("CREATE TABLE writes (id serial PRIMARY KEY)")
    assert pair.replayed()
    url = f"postgresql://postgres@{old.host}:{old.port},{new.host}:{new.port}/postgres?target_session_attrs=read-write"
    settings = load_settings(
        {"ATSBOOST_ENV": "testing", "DATABASE_URL": url, "DATABASE_PRIMARY_CHECK_INTERVAL": str(interval)}
    )
    database, stop = Database(settings, before_serving=()), threading.Event()

    def write() -> None:
        while not stop.is_set():
            database.run_transaction(lambda s: s.execute(text("INSERT INTO writes DEFAULT VALUES")))
            stop.wait(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(1 + random.uniform(0, interval))  # the promotion at any phase of the watch's interval
        promoted: list[float] = []
        watcher = threading.Thread(target=_when_promoted, args=(new, promoted))
        watcher.start()
        pair.promote()
        watcher.join(30)
        assert wait_until(lambda: bool(seen), timeout=interval + 30), "no split brain was reported"
        return seen[0] - promoted[0]
    finally:
        stop.set()
        writer.join(30)
        database.shutdown(timeout=5)


def _when_promoted(url: URL, promoted: list[float]) -> None:
    """Ask the standby every 5 ms whether it is still in recovery; note when it first is not."""
    with connect(url) as standby:
        while standby.execute("SELECT pg_is_in_recovery()").fetchone() != (False,):
            time.sleep(0.005)
        promoted.append(time.monotonic())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four faults per mode (0: none)")
    parser.add_argument("--synchronous", choices=["on", "off", "both"], default="both")
    parser.add_argument("--split-brain-rounds", type=int, default=5)
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason and args.rounds:
        parser.error(f"a Patroni cluster cannot be made here: {reason}")
    logging.basicConfig(level=logging.CRITICAL)
    if args.rounds:
        print(
            "| synchronous_mode | fault | route | errors | longest call (s) | first commit (s) |"
            " longest gap (s) | acknowledged | lost | duplicated | failed reads |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for mode in ("on", "off") if args.synchronous == "both" else (args.synchronous,):
            for line in failovers(mode == "on", args.rounds):
                print(line, flush=True)
    for interval in (2.0, 0.5) if args.split_brain_rounds else ():
        delays = [split_brain_delay(interval) for _ in range(args.split_brain_rounds)]
        print(f"split brain fenced after {spread(delays)} s (DATABASE_PRIMARY_CHECK_INTERVAL={interval:g})")


if __name__ == "__main__":
    main()
