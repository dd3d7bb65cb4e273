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
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from types import FrameType
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus
from sqlalchemy.engine import Engine

from atsboost.errors import first_line
from atsboost.runtime.monitor import HealthMonitor
from atsboost.runtime.pool.queue import IdleTimeoutQueuePool
from atsboost.runtime.sockets import shut_socket

logger = logging.getLogger(__name__)

CANCEL_GRACE = 2.0  # seconds for cancelled queries to hand their connections back
MONITOR_STOP_LEAST = 1.0  # seconds a monitor's check, its socket shut, is given to end at least
TERMINATE_CONNECT = 2  # seconds (libpq's least) to reach the server again to end abandoned sessions


@dataclass(frozen=True)
class ShutdownReport:
    """What a shutdown did; ``leaked`` counts connections held, but running nothing, at interpreter exit.

    ``terminated``: the abandoned connections whose server sessions a fresh connection ended
    (where the link allows; else the server ends them itself within the stall bound).
    """

    waited_for: int
    cancelled: int
    abandoned: int
    seconds: float
    leaked: int = 0
    terminated: int = 0


@dataclass(frozen=True)
class Abandoned:
    """A connection given up at shutdown: its server session, and how to reach that server again."""

    pid: int
    parameters: dict[str, str]  # libpq's, as the connection used them, less the password
    password: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, connection: Any) -> Abandoned | None:
        """Read a psycopg connection (sync or async) before it is closed; None if it has no session."""
        if connection is None:
            return None
        try:
            info = connection.info
            return cls(info.backend_pid, info.get_parameters(), info.password)
        except psycopg.Error:
            return None


@dataclass(frozen=True)
class Wait:
    """Step: wait until every connection but ``leaked`` is back, or ``deadline``; send those still out."""

    deadline: float
    leaked: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Cancel:
    """Step: cancel these connections' running queries, all at once and each bounded; send how many were."""

    entries: tuple[Any, ...]


@dataclass(frozen=True)
class Close:
    """Step: close what did not come back, or (``leaked``) at exit what was leaked; send what was closed."""

    entries: tuple[Any, ...]
    leaked: bool = False


@dataclass(frozen=True)
class Dispose:
    """Step: stop the monitor (``monitor``), by ``deadline``, or close every connection of the engine."""

    monitor: bool = False
    deadline: float | None = None


Step = Wait | Cancel | Close | Dispose


def shutdown_steps(
    pool: Any, *, timeout: float, started: float, monitored: bool, at_exit: bool = False
) -> Generator[Step, Any, ShutdownReport]:
    """Yield the shutdown's steps, once for the sync and the asyncio engine; each twin carries them out.

    Stop the monitor; stop handing out connections; at exit, close the leaked ones;
    wait for the rest until the deadline; cancel the queries still running and give
    them ``CANCEL_GRACE``; close what did not come back; close every connection.
    """
    if monitored:
        yield Dispose(monitor=True, deadline=started + timeout)
        logger.info("shutdown: health monitor stopped")
    in_flight = in_use(pool)
    if isinstance(pool, IdleTimeoutQueuePool):
        pool.drain()
    leaked = tuple((yield Close(tuple(in_flight), leaked=True))) if at_exit else ()
    in_flight = [entry for entry in in_flight if entry not in leaked]
    log_waiting(timeout, len(in_flight))
    remaining = yield Wait(started + timeout, leaked)
    cancelled = (yield Cancel(tuple(entry for entry in remaining if running(entry)))) if remaining else 0
    if cancelled:
        log_cancelled(cancelled, timeout)
        remaining = yield Wait(time.monotonic() + CANCEL_GRACE, leaked)
    terminated = 0
    if remaining:
        log_abandoned(len(remaining))
        terminated = yield Close(tuple(remaining))
    yield Dispose()
    return finished(
        started, len(in_flight), cancelled, len(remaining), leaked=len(leaked), terminated=terminated
    )


def shutdown_engine(
    engine: Engine,
    *,
    timeout: float,
    monitor: HealthMonitor | None = None,
    owner_pid: int | None = None,
    at_exit: bool = False,
) -> ShutdownReport:
    """Shut one engine down gracefully: ``shutdown_steps``, each carried out in this thread.

    With ``at_exit`` (the interpreter is ending, so no code will give a connection
    back): checked-out connections that run no query are closed at once and
    reported as leaked; only running queries are waited for.
    """
    started = time.monotonic()
    if owner_pid is not None and owner_pid != os.getpid():
        if monitor is not None:
            monitor.stop()
        # A forked child: the sockets belong to the parent; drop them without closing.
        engine.dispose(close=False)
        return ShutdownReport(0, 0, 0, time.monotonic() - started)
    steps = shutdown_steps(
        engine.pool, timeout=timeout, started=started, monitored=monitor is not None, at_exit=at_exit
    )
    sent: Any = None
    while True:
        try:
            step = steps.send(sent)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        sent = _carry_out(step, engine, monitor)


def _carry_out(step: Step, engine: Engine, monitor: HealthMonitor | None) -> Any:
    if isinstance(step, Wait):
        return _wait_returned(engine.pool, step.deadline, list(step.leaked))
    if isinstance(step, Cancel):
        return _cancel(list(step.entries))
    if isinstance(step, Close):
        return _close_leaked(list(step.entries)) if step.leaked else _close_abandoned(list(step.entries))
    if step.monitor and monitor is not None:
        remaining = (step.deadline or time.monotonic()) - time.monotonic()
        monitor.stop(timeout=max(MONITOR_STOP_LEAST, remaining))
    elif not step.monitor:
        engine.dispose()
    return None


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


def finished(  # noqa: PLR0913 (the report's figures)
    started: float, waited_for: int, cancelled: int, abandoned: int, *, leaked: int = 0, terminated: int = 0
) -> ShutdownReport:
    """Return the report of a shutdown that began at ``started`` (monotonic), and log its last line."""
    seconds = time.monotonic() - started
    report = ShutdownReport(waited_for, cancelled, abandoned, seconds, leaked=leaked, terminated=terminated)
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
        threading.Thread(target=cancel, args=(entry.dbapi_connection,), name="atsboost-cancel", daemon=True)
        for entry in entries
        if entry.dbapi_connection is not None
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + CANCEL_GRACE + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return len(outcomes)


def _close_abandoned(entries: list[Any]) -> int:
    """Shut the socket of what did not come back even after a cancel, then end its server sessions.

    Return how many sessions ``end_on_server`` ended.
    """
    abandoned = [found for entry in entries if (found := _abandoned(entry.dbapi_connection)) is not None]
    for entry in entries:
        shut_socket(entry.driver_connection)
    return end_on_server(abandoned)


def _abandoned(connection: Any) -> Abandoned | None:
    return Abandoned.of(getattr(connection, "driver_connection", connection))


def end_on_server(abandoned: list[Abandoned]) -> int:
    """End abandoned connections' server sessions through a fresh connection; return how many ended.

    Where the link allows, ``pg_terminate_backend`` ends them at once. Behind a dead link
    no connection gets through (the attempt is bounded by ``TERMINATE_CONNECT``): the
    server then ends them itself within the stall bound, by the keepalives and user
    timeout atsboost sets on its side of every connection (``config.parameters``).
    """
    ended = 0
    for target, sessions in _by_server(abandoned).items():
        parameters = {**dict(target), "connect_timeout": str(TERMINATE_CONNECT)}
        conninfo = make_conninfo("", **parameters, password=sessions[0].password)
        pids = [session.pid for session in sessions]
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                row = conn.execute("SELECT count(pg_terminate_backend(p)) FROM unnest(%s::int[]) p", [pids])
                ended += int(row.fetchone()[0])  # type: ignore[index]
        except psycopg.Error as exc:
            logger.info(
                "shutdown: %d abandoned session(s) cannot be ended from here (%s); the server ends them "
                "itself within the stall bound",
                len(pids),
                first_line(exc),
            )
    return ended


def _by_server(abandoned: list[Abandoned]) -> dict[tuple[tuple[str, str], ...], list[Abandoned]]:
    grouped: dict[tuple[tuple[str, str], ...], list[Abandoned]] = {}
    for session in abandoned:
        grouped.setdefault(tuple(sorted(session.parameters.items())), []).append(session)
    return grouped
