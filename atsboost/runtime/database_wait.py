"""Waiting for the database at startup: bounded, backed off, and stopped at once when waiting cannot help.

During a deploy the database may still be starting or restarting. ``startup()``
waits for it here (``async_retry.wait_for_database`` is the asyncio twin, with the
same ``wait_policy``); a refused password, an SSL failure or a missing database
ends the wait at once, with the diagnosis.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
from sqlalchemy.engine import Engine
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from atsboost.errors import first_line
from atsboost.runtime.diagnosis import database_error, diagnose
from atsboost.runtime.engine import engine_url
from atsboost.runtime.retry import is_transient

logger = logging.getLogger(__name__)


def wait_for_database(engine: Engine, *, seconds: float) -> None:
    """Connect, retrying transient failures with backoff for up to ``seconds`` in total.

    During a deploy the database may still be starting; past the budget this raises
    DatabaseUnavailableError naming the (masked) URL and the last reason. A failure
    that waiting cannot mend (a refused password, SSL, a missing database) stops it at once.
    """
    try:
        Retrying(**wait_policy(seconds))(_ping, engine)
    except sqlalchemy.exc.DBAPIError as exc:
        raise database_error(engine_url(engine), exc) from None


def wait_policy(seconds: float) -> dict[str, Any]:
    """Return tenacity's arguments for waiting for the database (sync and async share them).

    Transient failures only, and not those that waiting cannot mend; backoff from
    0.1 s up to 2 s with jitter; ``seconds`` in total.
    """
    return {
        "retry": retry_if_exception(lambda exc: is_transient(exc) and not _permanent(exc)),
        "stop": stop_after_delay(seconds),
        "wait": wait_exponential(multiplier=0.1, max=2.0) + wait_random(0, 0.1),
        "before_sleep": _log_wait,
        "reraise": True,
    }


def _permanent(exc: BaseException) -> bool:
    return isinstance(exc, sqlalchemy.exc.DBAPIError) and diagnose(exc).permanent


def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


def _log_wait(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    logger.warning(
        "the database is not reachable yet (%s); trying again in %.2f s",
        first_line(exc) if exc is not None else "unknown",
        state.upcoming_sleep,
        extra={
            "event": "database_wait",
            "attempt": state.attempt_number,
            "delay_seconds": state.upcoming_sleep,
        },
    )
