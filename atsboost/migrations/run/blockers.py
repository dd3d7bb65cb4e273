"""Who blocks a migration: sampled from another connection while it waits for a lock."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

logger = logging.getLogger("atsboost.migrations.run.locks")


@dataclass(frozen=True)
class Blocker:
    """A session that held a lock the migration waited for."""

    pid: int
    user: str | None
    application: str | None
    state: str | None
    transaction_seconds: float | None
    query: str

    def describe(self) -> str:
        """One line for an operator: who, how long, doing what."""
        age = f", in a transaction for {self.transaction_seconds:.0f} s" if self.transaction_seconds else ""
        return (
            f"pid {self.pid} (user {self.user}, application {self.application or '-'}, {self.state}{age}): "
            f"{self.query}"
        )


class Waiting:
    """Say who a statement waits for, once it has waited a second: once per holder and wait."""

    NAMED_AFTER = 1.0  # seconds: a shorter wait is a lock's ordinary hand-over

    def __init__(self) -> None:
        self._since: float | None = None
        self._named: set[int] = set()

    def saw(self, blockers: list[Blocker], waited_on: str | None = None) -> None:
        """Take a sample of the blockers and the relation waited for (no blocker: the wait is over)."""
        if not blockers:
            self._since, self._named = None, set()
            return
        now = time.monotonic()
        self._since = self._since or now
        waited = now - self._since
        for blocker in blockers:
            if waited >= self.NAMED_AFTER and blocker.pid not in self._named:
                self._named.add(blocker.pid)
                fields = {
                    "event": "migration_lock_wait",
                    "holder_pid": blocker.pid,
                    "table": waited_on,
                    "waited_seconds": round(waited, 1),
                }
                on = f" on {waited_on}" if waited_on else ""
                logger.warning(
                    "waiting %.0f s for a lock%s held by %s", waited, on, blocker.describe(), extra=fields
                )


class BlockerWatch:
    """Record who blocks a backend, from another connection, while a migration runs.

    When a statement gives up on ``lock_timeout`` its lock wait is over, and with it
    the evidence; so the watch samples ``pg_blocking_pids`` while it is still waiting.
    """

    def __init__(self, engine: Engine, pid: int, *, interval: float) -> None:
        self._engine = engine
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="atsboost-blocker-watch", daemon=True)
        self.blockers: list[Blocker] = []

    def __enter__(self) -> BlockerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            with self._engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                waiting = Waiting()
                while not self._stop.wait(self._interval):
                    found = self._sample(conn)
                    if found:
                        self.blockers = found
                    waiting.saw(found, self._waited_on(conn) if found else None)
        except Exception:  # the watch only adds detail to an error; never fail the migration
            logger.debug("blocker watch stopped", exc_info=True)

    def _waited_on(self, conn: Connection) -> str | None:
        """Return the relation whose lock the backend waits for, if it waits for a relation's."""
        waited = conn.execute(
            text("SELECT relation::regclass::text FROM pg_locks WHERE pid = :pid AND NOT granted LIMIT 1"),
            {"pid": self._pid},
        ).scalar()
        return str(waited) if waited else None

    def _sample(self, conn: Connection) -> list[Blocker]:
        rows = conn.execute(
            text(
                "SELECT pid, usename, application_name, state,"
                " extract(epoch FROM now() - xact_start) AS age, left(query, 200) AS query"
                " FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(:pid)) ORDER BY xact_start"
            ),
            {"pid": self._pid},
        ).all()
        return [Blocker(r.pid, r.usename, r.application_name, r.state, r.age, r.query) for r in rows]
