"""Whole-transaction retry for transient PostgreSQL errors.

A transaction is retried from its beginning, never resumed: ``fn(session)`` runs
again on a fresh connection. Retried: serialization failures (40001), deadlocks
(40P01), admin shutdown and crash recovery (57P01-57P03), too many connections
(53300), and connection failures or losses before COMMIT (class 08, or a driver
error without SQLSTATE that SQLAlchemy flags as a disconnect, which includes a write
refused by a server read-only for a failover's moment: ``runtime.standby``). Never retried:
constraint violations, syntax errors, permission errors. A connection lost
*during* COMMIT leaves the outcome unknown: ``fn`` runs again only when the
caller declared it idempotent; otherwise TransactionOutcomeUnknownError.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypedDict, TypeVar

import psycopg
import sqlalchemy.exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    wait_exponential,
    wait_random,
)

from atsboost import metrics
from atsboost.errors import ConfigurationError, TransactionOutcomeUnknownError, first_line
from atsboost.metrics.stats import PoolStats
from atsboost.metrics.tracing import NO_BLOCK, NO_SPAN, AttributeValue, Span
from atsboost.runtime.pipeline import PIPELINE_COMMIT
from atsboost.runtime.pool.metrics import stats_of

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})
# At COMMIT these mean the connection went away: whether the commit happened is unknown.
_LOST_CONNECTION_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def sqlstate(exc: BaseException) -> str | None:
    """Return the SQLSTATE behind a SQLAlchemy or psycopg error, if the server sent one."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None)


def is_transient(exc: BaseException) -> bool:
    """Tell whether running the whole transaction again may succeed."""
    if not isinstance(exc, sqlalchemy.exc.DBAPIError):
        return False
    state = sqlstate(exc)
    if state in RETRYABLE_SQLSTATES or (state or "").startswith("08"):
        return True
    # No SQLSTATE: the connection failed or was lost before the server could answer.
    return exc.connection_invalidated or (state is None and isinstance(exc.orig, psycopg.OperationalError))


def _lost_connection(exc: BaseException) -> bool:
    if not isinstance(exc, sqlalchemy.exc.DBAPIError):
        return False
    state = sqlstate(exc)
    lost = state in _LOST_CONNECTION_SQLSTATES or (state or "").startswith("08")
    return lost or exc.connection_invalidated or state is None


class TransactionOptions(TypedDict, total=False):
    """What a caller chooses of a transaction's retry: the facades' keyword arguments, typed for IDEs."""

    idempotent: bool
    read_only: bool
    isolation_level: str | None
    attempts: int | None
    max_seconds: float
    pipeline_commit: bool


def run_transaction(
    fn: Callable[[Session], T],
    *,
    engine: Engine,
    idempotent: bool = False,
    attempts: int | None = None,
    max_seconds: float = 15.0,
    isolation_level: str | None = None,
    read_only: bool = False,
    pipeline_commit: bool = False,
    route: Callable[[], Engine] | None = None,
) -> T:
    """Run ``fn(session)`` in a transaction and commit; on a transient error, run it all again.

    ``fn`` must have no side effects outside the database (it may run several times).
    ``max_seconds`` (DATABASE_RETRY_MAX_SECONDS through ``atsboost.db``) is a wall-clock
    deadline: no attempt starts after it, and no backoff sleeps past it; an attempt
    under way is bounded by the connection's own stall and statement timeouts.
    ``attempts`` optionally caps the count as well. Pass ``idempotent=True`` when
    running ``fn`` twice is harmless, so a connection lost during COMMIT is retried
    too. With ``read_only=True`` the server refuses writes, so a connection lost at
    COMMIT loses nothing and ``fn``'s result stands. ``route`` picks each attempt's
    engine (a read replica); ``engine`` then names the pool that counts the transaction.
    ``pipeline_commit=True`` sends the INSERTs with the COMMIT (``runtime.pipeline``).
    """
    if pipeline_commit:
        check_pipeline_commit(engine.dialect)
    run = TransactionRun(
        engine.pool,
        idempotent=idempotent,
        attempts=attempts,
        max_seconds=max_seconds,
        isolation_level=isolation_level,
        read_only=read_only,
        pipeline_commit=pipeline_commit,
    )
    pick = route or (lambda: engine)

    def attempt() -> T:
        run.replay_first_failure()
        return _attempt(fn, pick(), run)

    with run.counted():
        # The first attempt runs bare: tenacity's loop (about 40 us) is built only after a failure.
        try:
            return _attempt(fn, pick(), run)
        except Exception as exc:
            if not run.retries(exc):
                raise
        return Retrying(**run.policy())(attempt)


class TransactionRun:
    """One ``run_transaction``'s decisions and counts, the same for the sync and the asyncio loop.

    Each loop keeps only its waiting: it runs the first attempt bare, asks ``retries``
    whether a failure goes on, and hands tenacity (``Retrying`` or ``AsyncRetrying``)
    ``policy()``, whose attempt 1 is ``replay_first_failure``; ``counted`` records the
    outcome on the pool's figures and the transaction's span.
    """

    def __init__(  # noqa: PLR0913 (run_transaction's options, each a keyword)
        self,
        pool: object,
        *,
        idempotent: bool,
        attempts: int | None,
        max_seconds: float,
        isolation_level: str | None,
        read_only: bool,
        pipeline_commit: bool = False,
    ) -> None:
        self.idempotent, self.read_only, self.attempts = idempotent, read_only, attempts
        self.deadline = time.monotonic() + max_seconds
        self.stats = stats_of(pool)
        self.options = connection_options(isolation_level, read_only, pipeline_commit=pipeline_commit)
        self.span: Span = NO_SPAN
        self._first_failure: BaseException | None = None

    @contextmanager
    def counted(self) -> Iterator[None]:
        """Run the transaction's attempts inside its span; count how it ended (committed, failed, unknown)."""
        with transaction_span(self.stats, idempotent=self.idempotent, read_only=self.read_only) as span:
            self.span = span
            try:
                yield
            except Exception as exc:
                count_outcome(self.stats, span, exc)
                raise
            count_outcome(self.stats, span, None)

    def retries(self, exc: BaseException) -> bool:
        """Tell whether the first attempt's failure is retried; if so, keep it as tenacity's attempt 1."""
        if not worth_retrying(exc, self.attempts, self.deadline):
            return False
        self._first_failure = exc
        return True

    def replay_first_failure(self) -> None:
        """Raise the first attempt's failure, once: tenacity then decides about it as about any other."""
        if self._first_failure is not None:
            failure, self._first_failure = self._first_failure, None
            raise failure

    def policy(self) -> dict[str, Any]:
        """Return tenacity's arguments for the retries (``retry_policy``)."""
        return retry_policy(self.attempts, self.deadline, self.stats, self.span)


def transaction_span(
    stats: PoolStats | None, *, idempotent: bool, read_only: bool
) -> AbstractContextManager[Span]:
    """Return ``run_transaction``'s span: under the caller's span, around the SQL spans of its attempts."""
    if metrics.tracing.tracer is None:  # untraced: not even the attributes are built
        return NO_BLOCK
    attributes: dict[str, AttributeValue] = {
        "db.system.name": "postgresql",
        "atsboost.transaction.idempotent": idempotent,
        "atsboost.transaction.read_only": read_only,
        "atsboost.transaction.attempts": 1,
    }
    if stats is not None and stats.enabled:
        attributes["atsboost.pool"] = stats.name
    return metrics.tracing.span("atsboost.transaction", attributes)


def count_outcome(stats: PoolStats | None, span: Span, exc: BaseException | None) -> None:
    """Count a finished ``run_transaction`` (committed, outcome unknown, or failed); say it on its span."""
    if exc is None:
        outcome = "committed"
    else:
        unknown = isinstance(exc, TransactionOutcomeUnknownError)
        outcome = "outcome_unknown" if unknown else "failed"
    span.set_attribute("atsboost.transaction.outcome", outcome)
    if stats is not None:
        stats.transaction(outcome)


def worth_retrying(exc: BaseException, attempts: int | None, deadline: float) -> bool:
    """Tell whether a first attempt's failure is retried: transient, attempts left, time left."""
    return is_transient(exc) and attempts != 1 and time.monotonic() < deadline


def retry_policy(
    attempts: int | None, deadline: float, stats: PoolStats | None = None, span: Span = NO_SPAN
) -> dict[str, Any]:
    """Return tenacity's arguments for retrying a transaction: the sync and async loops share them.

    Transient errors only; backoff with jitter; no attempt starts, and no backoff
    sleeps, past ``deadline`` (``time.monotonic()``); at most ``attempts`` in all.
    Each retry is logged, counted by SQLSTATE in ``stats``, and an event on ``span``.
    """

    def stop(state: RetryCallState) -> bool:
        capped = attempts is not None and state.attempt_number >= attempts
        return capped or time.monotonic() + (state.upcoming_sleep or 0.0) >= deadline

    return {
        "retry": retry_if_exception(is_transient),
        "stop": stop,
        "wait": wait_exponential(multiplier=0.05, max=0.5) + wait_random(0, 0.05),
        "before_sleep": functools.partial(_log_retry, stats=stats, span=span),
        "reraise": True,
    }


def settle_commit_failure(exc: sqlalchemy.exc.DBAPIError, *, read_only: bool, idempotent: bool) -> None:
    """Raise what a failed COMMIT means, or return when ``fn``'s result stands (sync and async alike).

    A read-only transaction wrote nothing, so a connection lost at COMMIT loses
    nothing. Otherwise a lost connection leaves the outcome unknown: said so, unless
    the caller declared the transaction idempotent (then the error is raised as it
    is, and retried).
    """
    lost = _lost_connection(exc)
    if read_only and lost:
        return
    if lost and not idempotent:
        raise TransactionOutcomeUnknownError(
            "the connection broke during COMMIT, so the transaction may or may not have been "
            f"applied ({first_line(exc)}); check before repeating it, or pass idempotent=True if "
            "running it twice is harmless"
        ) from exc
    raise exc


def connection_options(
    isolation_level: str | None,
    read_only: bool,  # noqa: FBT001
    *,
    pipeline_commit: bool = False,
) -> dict[str, object]:
    """Return the attempt's connection options.

    They are set on the Connection: ``Engine.execution_options`` builds a new engine
    at every call (about 45 us).
    """
    options: dict[str, object] = {}
    if isolation_level is not None:
        options["isolation_level"] = isolation_level
    if read_only:
        options["postgresql_readonly"] = True  # BEGIN READ ONLY, no extra round trip
    if pipeline_commit:
        options[PIPELINE_COMMIT] = True
    return options


def check_pipeline_commit(dialect: object) -> None:
    """Refuse ``pipeline_commit=True`` on an engine that would ignore it: say how to turn it on."""
    if PIPELINE_COMMIT not in getattr(dialect, "connection_characteristics", {}):
        raise ConfigurationError(
            "run_transaction(pipeline_commit=True) needs an engine built with DATABASE_PIPELINE_BEGIN=true "
            "(it sends BEGIN and the writes with COMMIT); set it, or drop pipeline_commit"
        )


def _attempt(fn: Callable[[Session], T], engine: Engine, run: TransactionRun) -> T:
    # A read-only transaction has nothing to flush: autoflush would only look for pending changes.
    with Session(engine, expire_on_commit=False, autoflush=not run.read_only) as session:
        if run.options:
            session.connection(execution_options=run.options)
        result = fn(session)
        try:
            session.commit()
        except sqlalchemy.exc.DBAPIError as exc:
            settle_commit_failure(exc, read_only=run.read_only, idempotent=run.idempotent)
    return result


def _log_retry(state: RetryCallState, *, stats: PoolStats | None, span: Span) -> None:
    exc = state.outcome.exception() if state.outcome else None
    state_code = sqlstate(exc) if exc is not None else None
    if stats is not None:
        stats.retry(state_code)
    _trace_retry(span, state, exc, state_code)
    code = state_code or "no SQLSTATE"
    fields = {
        "sqlstate": state_code,
        "attempt": state.attempt_number + 1,
        "delay_seconds": state.upcoming_sleep,
    }
    logger.warning(
        "transaction failed with %s (%s); retrying, attempt %d, in %.2f s",
        code,
        first_line(exc) if exc is not None else "",
        state.attempt_number + 1,
        state.upcoming_sleep,
        extra={"event": "transaction_retry", **fields},
    )


def _trace_retry(
    span: Span, state: RetryCallState, exc: BaseException | None, state_code: str | None
) -> None:
    """Add the failed attempt to the transaction's span, with its SQLSTATE and the backoff before the next."""
    event: dict[str, AttributeValue] = {
        "atsboost.transaction.attempt": state.attempt_number,
        "atsboost.transaction.backoff_seconds": state.upcoming_sleep,
        "exception.type": type(exc).__qualname__ if exc is not None else "",
    }
    if state_code is not None:
        event["db.response.status_code"] = state_code
    span.add_event("atsboost.transaction.retry", event)
    span.set_attribute("atsboost.transaction.attempts", state.attempt_number + 1)
