"""A QueuePool whose idle timeout is real, which validates idle connections and tracks checkouts.

SQLAlchemy's QueuePool keeps an unused connection open forever (``pool_recycle``
only looks at a connection's age, and only when it is checked out). Here a
connection that sat in the pool longer than ``idle_timeout`` seconds is closed by
a background reaper, so it stops holding a server slot, and a checkout never hands
out one that has expired. The pool is used LIFO so that, under light load, the
connections at the bottom of the stack really do go idle and get reaped.

It also remembers who holds which connection since when: the maintenance thread
reports leaks (atsboost.runtime.leaks), and graceful shutdown waits for, then cancels,
what is still checked out.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import threading
import time
from typing import Any

import sqlalchemy.exc
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from atsboost.errors import first_line
from atsboost.metrics.stats import PoolStats
from atsboost.runtime import leaks
from atsboost.runtime.pool import metrics as pool_metrics
from atsboost.runtime.pool import waiting as pool_waiting
from atsboost.runtime.pool.internals import QueuePoolInternals, recreating
from atsboost.runtime.pool.waiting import TaskWaiter, ThreadWaiter
from atsboost.runtime.unreachable import DatabaseUnreachableError

logger = logging.getLogger("atsboost.runtime.pool")

REAPER_STOP = 5.0  # seconds a dispose waits for the maintenance thread (a reap in progress) to end
_IDLE_SINCE = "atsboost.idle_since"
_RETIRE_AT = "atsboost.retire_at"
_JITTER = 0.1  # retire connections up to 10 % early, so those opened together do not all reconnect at once


class IdleTimeoutQueuePool(QueuePool):
    """QueuePool that closes connections left unused for longer than ``idle_timeout``."""

    # How a checkout waits and how a checkout's stack is recorded: threads here, tasks in async_pool.
    _waiter_class: type[ThreadWaiter | TaskWaiter] = ThreadWaiter
    _capture = staticmethod(leaks.capture_stack)
    stats: PoolStats  # its figures in atsboost.metrics (runtime/pool/metrics.py)

    # Not keyword-only: create_engine finds pool arguments by positional-or-keyword name.
    def __init__(
        self,
        creator: Any,
        idle_timeout: float | None = None,
        validate_after: float = 1.0,
        leak_threshold: float | None = None,
        max_lifetime: float | None = None,
        metrics_name: str | None = "pool",  # None: DATABASE_METRICS=false
        **kw: Any,
    ) -> None:
        kw.setdefault("use_lifo", True)
        recreated = recreating(kw)
        super().__init__(creator, **kw)
        self._idle_timeout = idle_timeout
        self._validate_after = validate_after
        self._leak_threshold = leak_threshold
        self._max_lifetime = max_lifetime
        self._checked_out: dict[ConnectionPoolEntry, leaks.Checkout] = {}
        self._draining = False
        self._handoff = threading.Lock()
        self._waiters: collections.deque[ThreadWaiter | TaskWaiter] = collections.deque()
        self._stopped = threading.Event()
        self._reaper_pid: int | None = None
        self._reaper_lock = threading.Lock()
        self._reaper: threading.Thread | None = None
        self._internals = QueuePoolInternals(self)
        if not recreated:  # a recreated pool takes over its predecessor's counters
            pool_metrics.enrol(self, metrics_name)

    @property
    def idle_timeout(self) -> float | None:
        """Seconds an unused connection may stay open; None means forever."""
        return self._idle_timeout

    def reap_idle(self) -> int:
        """Close every pooled connection idle past the timeout; return how many were closed."""
        if self._idle_timeout is None:
            return 0
        held: list[ConnectionPoolEntry] = []
        while (record := self._internals.take_idle()) is not None:
            held.append(record)
        closed = 0
        # Put back the survivors oldest first, so the LIFO order is unchanged.
        now = time.monotonic()
        for record in reversed(held):
            reason = self._expired(record, self._idle_for(record, now), now)
            if reason:
                self._discard(record)
                self.stats.closed(reason)
                closed += 1
            else:
                self._put_back(record)
        if closed:
            logger.debug("closed %d connection(s) idle for over %ss", closed, self._idle_timeout)
        return closed

    def drain(self) -> None:
        """Stop handing out connections: every later checkout fails at once (graceful shutdown)."""
        self._draining = True

    def in_use(self) -> list[ConnectionPoolEntry]:
        """Return the entries checked out right now."""
        return list(self._checked_out)

    def waiting(self) -> int:
        """Return how many checkouts are waiting for a connection right now."""
        return len(self._waiters)

    def report_leaks(self) -> int:
        """Report, once each, connections held longer than the leak threshold; return how many."""
        if self._leak_threshold is None:
            return 0
        reported = leaks.report_held(list(self._checked_out.values()), self._leak_threshold)
        if reported:
            self.stats.count("leaks", reported)
        return reported

    def maintain(self) -> None:
        """Close connections idle past the timeout and report leaks (the maintenance thread or task)."""
        self.reap_idle()
        self.report_leaks()

    def dispose(self) -> None:
        """Close the pooled connections and stop the reaper."""
        self.stop_reaper()
        super().dispose()

    def recreate(self) -> QueuePool:
        """Return a fresh pool with the same settings (``Engine.dispose``); this one's reaper stops."""
        self.stop_reaper()
        new = super().recreate()
        assert isinstance(new, IdleTimeoutQueuePool)
        new._idle_timeout = self._idle_timeout
        new._validate_after = self._validate_after
        new._leak_threshold = self._leak_threshold
        new._max_lifetime = self._max_lifetime
        pool_metrics.adopt(new, self.stats)
        return new

    # _do_return_conn and _do_get are the two hooks every SQLAlchemy pool class implements to say
    # what checkin and checkout do; overriding them is how a Pool subclass works. Any other private
    # member goes through QueuePoolInternals.
    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        self._checked_out.pop(record, None)
        record.info[_IDLE_SINCE] = time.monotonic()
        self._start_reaper()
        self._release(record)

    def _release(self, record: ConnectionPoolEntry) -> None:
        """Hand a free connection to the longest waiter, else put it back in the pool.

        SQLAlchemy's queue lets the thread that returns a connection take it straight
        back before a woken waiter runs; under contention some threads then starve.
        Handing it over first-come, first-served (as psycopg_pool does) keeps waits fair.
        """
        with self._handoff:
            if self._waiters:
                self._waiters.popleft().wake(record)
                return
            self._internals.put_idle(record)

    def _acquire(self) -> ConnectionPoolEntry:
        with self._handoff:
            idle = self._internals.take_idle()
            grow = idle is None and self._internals.claim_slot()
            if idle is None and not grow:
                waiter = self._waiter_class()
                self._waiters.append(waiter)
        if idle is not None or grow:
            self.stats.waited(0.0)  # served at once, outside the hand-off lock
        if idle is not None:
            return idle
        if grow:
            try:
                return self._internals.open()
            except BaseException:
                self._internals.release_slot()
                raise
        began = time.monotonic()
        handed = self._wait(waiter)
        self.stats.waited(time.monotonic() - began)
        if handed:
            assert waiter.record is not None
            return waiter.record
        with self._handoff:
            if waiter.record is not None:  # handed over just as the wait timed out
                return waiter.record
            self._waiters.remove(waiter)
        self.stats.count("timeouts")
        raise sqlalchemy.exc.TimeoutError(
            f"QueuePool limit of size {self.size()} overflow {self._internals.max_overflow} reached, "
            f"connection timed out, timeout {self._internals.timeout:.2f}",
            code="3o7r",
        )

    def _wait(self, waiter: ThreadWaiter | TaskWaiter) -> bool:
        """Wait to be handed a connection; a waiter cancelled meanwhile passes on what it was handed."""
        try:
            return waiter.wait(self._internals.timeout)
        except BaseException:  # an asyncio task cancelled while it waited
            with self._handoff:
                if waiter.record is None:
                    self._waiters.remove(waiter)
            if waiter.record is not None:
                self._release(waiter.record)
            raise

    def _do_get(self) -> ConnectionPoolEntry:
        if self._draining:
            raise DatabaseUnreachableError(
                "the database layer is shutting down: no new connections are handed out"
            )
        record = self._acquire()
        now = time.monotonic()  # read once: every checkout pays for this bookkeeping
        idle = self._idle_for(record, now)
        reason = self._expired(record, idle, now)
        if reason:
            # Closing the DBAPI connection makes the entry reconnect on checkout.
            record.info.pop(_RETIRE_AT, None)
            record.close()
            self.stats.closed(reason)
        elif idle > self._validate_after:
            self._validate(record)
        if self._max_lifetime is not None and _RETIRE_AT not in record.info:
            record.info[_RETIRE_AT] = now + self._max_lifetime * (1 - random.random() * _JITTER)
        if self._leak_threshold is None:
            self._checked_out[record] = leaks.Checkout(now, None)
        else:
            self._checked_out[record] = leaks.Checkout(now, self._capture())
            self._start_reaper()
        return record

    def _validate(self, record: ConnectionPoolEntry) -> None:
        """Ping a connection that sat idle; if it is dead, reconnect it and recycle its generation.

        A busy connection is not pinged (HikariCP's bypass window): after a server
        restart the first idle checkout finds the break, and every connection older
        than that moment is then recycled at its next checkout, without a round trip.
        """
        connection = record.dbapi_connection
        assert connection is not None  # _idle_for is 0 for an entry without a connection
        self.stats.count("validations")
        try:
            self._internals.ping(connection)
        except Exception as exc:
            logger.info("a pooled connection was dead (%s); reconnecting", first_line(exc))
            self._internals.recycle_older_connections()
            record.invalidate(exc)

    def _idle_for(self, record: ConnectionPoolEntry, now: float) -> float:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or record.dbapi_connection is None:
            return 0.0
        return now - float(idle_since)

    def _expired(self, record: ConnectionPoolEntry, idle: float, now: float) -> str | None:
        """Why the connection must go: idle past the idle timeout, or past its (jittered) lifetime."""
        if self._idle_timeout is not None and idle > self._idle_timeout:
            return "idle_timeout"
        retire_at = record.info.get(_RETIRE_AT)
        return "max_lifetime" if retire_at is not None and now >= retire_at else None

    def _discard(self, record: ConnectionPoolEntry) -> None:
        record.info.pop(_RETIRE_AT, None)
        try:
            record.close()
        finally:
            self._internals.release_slot()

    def _put_back(self, record: ConnectionPoolEntry) -> None:
        self._release(record)

    def _start_reaper(self) -> None:
        # A forked worker inherits the flag but not the thread: track the pid.
        if self._reaper_pid == os.getpid() or (self._idle_timeout is None and self._leak_threshold is None):
            return
        with self._reaper_lock:
            if self._reaper_pid == os.getpid():
                return
            self._reaper_pid = os.getpid()
            self._reaper = pool_waiting.start_thread(self, self._stopped, self.maintenance_interval())

    def stop_reaper(self) -> None:
        """Stop the maintenance and wait (a bounded while) until its thread has ended.

        So that nothing of atsboost's still runs once a shutdown or a dispose returns.
        """
        self._stopped.set()
        reaper = getattr(self, "_reaper", None)
        if reaper is not None and reaper is not threading.current_thread():
            reaper.join(REAPER_STOP)

    def maintenance_interval(self) -> float:
        """Seconds between maintenance runs: a quarter of the shortest period watched, 0.1 to 5 s."""
        periods = [t for t in (self._idle_timeout, self._leak_threshold, self._max_lifetime) if t is not None]
        return min(max(min(periods) / 4, 0.1), 5.0)
