"""Graceful shutdown: let in-flight queries finish, cancel the rest at a deadline, close everything.

The sequence, each step logged with counts: stop the health monitor; stop handing
out connections; wait for checked-out connections to come back (their queries
complete) until the deadline; cancel the queries still running after it; close
every connection. Idempotent. In a forked worker it never touches the parent's
connections. Opt-in SIGTERM/SIGINT handlers run it, then chain to the handlers
that were installed before.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any

from psycopg.pq import TransactionStatus
from sqlalchemy.engine import Engine

from atsboost.runtime.monitor import HealthMonitor
from atsboost.runtime.pool import IdleTimeoutQueuePool

logger = logging.getLogger(__name__)

CANCEL_GRACE = 2.0  # seconds for cancelled queries to hand their connections back


@dataclass(frozen=True)
class ShutdownReport:
    """What a shutdown did; ``leaked`` counts connections held, but running nothing, at interpreter exit."""

    waited_for: int
    cancelled: int
    abandoned: int
    seconds: float
    leaked: int = 0


def shutdown_engine(
    engine: Engine,
    *,
    timeout: float,
    monitor: HealthMonitor | None = None,
    owner_pid: int | None = None,
    at_exit: bool = False,
) -> ShutdownReport:
    """Shut one engine down gracefully; see the module docstring for the sequence.

    With ``at_exit`` (the interpreter is ending, so no code will give a connection
    back): checked-out connections that run no query are closed at once and
    reported as leaked; only running queries are waited for.
    """
    started = time.monotonic()
    if monitor is not None:
        monitor.stop()
        logger.info("shutdown: health monitor stopped")
    if owner_pid is not None and owner_pid != os.getpid():
        # A forked child: the sockets belong to the parent; drop them without closing.
        engine.dispose(close=False)
        return ShutdownReport(0, 0, 0, time.monotonic() - started)
    pool = engine.pool
    in_flight = in_use(pool)
    if isinstance(pool, IdleTimeoutQueuePool):
        pool.drain()
    leaked = _close_leaked(in_flight) if at_exit else []
    in_flight = [entry for entry in in_flight if entry not in leaked]
    log_waiting(timeout, len(in_flight))
    remaining = _wait_returned(pool, started + timeout, leaked)
    cancelled = _cancel([entry for entry in remaining if running(entry)])
    if cancelled:
        log_cancelled(cancelled, timeout)
        remaining = _wait_returned(pool, time.monotonic() + CANCEL_GRACE, leaked)
    if remaining:
        log_abandoned(len(remaining))
        _close_abandoned(remaining)
    engine.dispose()
    return finished(started, len(in_flight), cancelled, len(remaining), leaked=len(leaked))


def in_use(pool: Any) -> list[Any]:
    """Return the pool's checked-out entries (none known for a pool other than atsboost's)."""
    return pool.in_use() if isinstance(pool, IdleTimeoutQueuePool) else []


def running(entry: Any) -> bool:
    """Tell whether a checked-out connection is running a query right now (libpq says ACTIVE).

    ``driver_connection`` is psycopg's connection, sync or async: both have ``info``.
    """
    connection = entry.driver_connection
    return connection is not None and connection.info.transaction_status == TransactionStatus.ACTIVE


def log_waiting(timeout: float, count: int) -> None:
    """Log the start of the wait for in-flight connections."""
    logger.info("shutdown: no new connections; waiting up to %gs for %d in-flight", timeout, count)


def log_cancelled(count: int, timeout: float) -> None:
    """Log the queries cancelled at the deadline."""
    logger.warning("shutdown: cancelled %d query(ies) still running after %gs", count, timeout)


def log_abandoned(count: int) -> None:
    """Log the connections closed because they did not come back."""
    logger.warning("shutdown: closing %d connection(s) that did not come back", count)


def finished(
    started: float, waited_for: int, cancelled: int, abandoned: int, *, leaked: int = 0
) -> ShutdownReport:
    """Return the report of a shutdown that began at ``started`` (monotonic), and log its last line."""
    report = ShutdownReport(waited_for, cancelled, abandoned, time.monotonic() - started, leaked=leaked)
    logger.info(
        "shutdown: closed every connection in %.2f s (%d waited for, %d cancelled, %d abandoned)",
        report.seconds,
        report.waited_for,
        report.cancelled,
        report.abandoned,
        extra={"event": "shutdown", **_fields(report)},
    )
    return report


def _fields(report: ShutdownReport) -> dict[str, float | int]:
    """Return the report as a log line's fields (``seconds`` as ``duration_seconds``, as elsewhere)."""
    fields: dict[str, float | int] = asdict(report)
    fields["duration_seconds"] = round(float(fields.pop("seconds")), 3)
    return fields


def install_signal_handlers(on_signal: Callable[[], Any]) -> None:
    """Run ``on_signal`` on SIGTERM and SIGINT, then chain to the handler installed before.

    With no previous handler of its own, SIGTERM then exits with status 0 (a graceful
    stop, as a deploy expects) and SIGINT raises KeyboardInterrupt as Python does.
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        signal.signal(signum, _chained(on_signal, previous))


def _chained(on_signal: Callable[[], Any], previous: Any) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s: shutting the database layer down", signal.Signals(signum).name)
        on_signal()
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, frame)
        elif previous is signal.SIG_IGN:
            return
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            raise SystemExit(0)

    return handler


def _close_leaked(entries: list[Any]) -> list[Any]:
    """Close, and report, checked-out connections that run nothing: at exit nobody will return them."""
    leaked = [entry for entry in entries if entry.dbapi_connection is not None and not running(entry)]
    for entry in leaked:
        logger.warning(
            "shutdown at exit: a connection was checked out and never returned (a leak); closing it. "
            "Return connections with `with engine.connect()` or session_scope()"
        )
        entry.dbapi_connection.close()
    return leaked


def _wait_returned(pool: Any, deadline: float, leaked: list[Any]) -> list[Any]:
    """Wait until every checked-out connection but the leaked ones is back; return those still out."""

    def out() -> list[Any]:
        return [entry for entry in in_use(pool) if entry not in leaked]

    remaining = out()
    while remaining and time.monotonic() < deadline:
        time.sleep(0.02)
        remaining = out()
    return remaining


def _cancel(entries: list[Any]) -> int:
    """Cancel the running queries all at once, each bounded: a dead link must not stall shutdown."""
    outcomes: list[bool] = []

    def cancel(connection: Any) -> None:
        try:
            connection.cancel_safe(timeout=CANCEL_GRACE)
            outcomes.append(True)
        except Exception as exc:  # a dead link cannot carry a cancel; closing the socket ends the query
            logger.debug("could not cancel a query: %s", exc)

    threads = [
        threading.Thread(target=cancel, args=(entry.dbapi_connection,), daemon=True)
        for entry in entries
        if entry.dbapi_connection is not None
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + CANCEL_GRACE + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return len(outcomes)


def _close_abandoned(entries: list[Any]) -> None:
    """Close what did not come back even after a cancel: its socket, so the holder gets an error."""
    for entry in entries:
        connection = entry.dbapi_connection
        if connection is not None:
            try:
                connection.close()
            except Exception as exc:  # closing a dead link may complain; it is closed all the same
                logger.debug("closing an abandoned connection: %s", exc)
