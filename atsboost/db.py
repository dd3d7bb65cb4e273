"""The application's entry points: the process-wide database, sessions, retry and lifecycle.

These functions are a facade over one default :class:`~atsboost.runtime.database.Database`.
Importing atsboost connects to nothing. ``startup()`` prepares the database before
the application serves; ``shutdown()`` (also run at interpreter exit, and by the
opt-in signal handlers) drains it gracefully; ``after_fork()`` makes a forked
worker open its own connections.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, Unpack

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from atsboost import migrations
from atsboost.config.settings import Settings
from atsboost.runtime import database
from atsboost.runtime.engine import create_engine
from atsboost.runtime.retry import TransactionOptions
from atsboost.runtime.shutdown import ShutdownReport

__all__ = [
    "Database",
    "after_fork",
    "create_engine",
    "default",
    "dispose_engine",
    "get_engine",
    "health_state",
    "run_transaction",
    "session_scope",
    "shutdown",
    "startup",
    "transaction",
]

T = TypeVar("T")


class Database(database.Database):
    """The runtime's :class:`~atsboost.runtime.database.Database`, migrating before it serves by default.

    ``startup()`` applies pending revisions (unless DATABASE_MIGRATE_ON_STARTUP=false);
    ``before_serving=()`` leaves migrations to a deploy step of their own.
    """

    default_before_serving = (migrations.before_serving,)


default = Database()
"""The process-wide database the functions below work on."""


def get_engine() -> Engine:
    """Return the process-wide Engine, built on first use from the settings.

    In development without DATABASE_URL the first call starts the embedded server.
    """
    return default.get_engine()


@contextmanager
def session_scope(engine: Engine | None = None, *, read_only: bool = False) -> Iterator[Session]:
    """Yield a Session that commits when the block succeeds and rolls back when it raises.

    Objects stay loaded after the commit (``expire_on_commit=False``) so they can be
    returned from the block and read without another query. For work that should
    survive a failover, prefer ``run_transaction``. ``read_only=True`` runs a READ ONLY
    transaction, on a read replica when DATABASE_REPLICA_URLS names a usable one.
    """
    scope = (
        default.session_scope(read_only=read_only)
        if engine is None
        else database.session_scope(engine, read_only=read_only)
    )
    with scope as session:
        yield session


def run_transaction(
    fn: Callable[[Session], T], *, engine: Engine | None = None, **options: Unpack[TransactionOptions]
) -> T:
    """Run ``fn(session)`` in a transaction and commit; on a transient error, run it all again.

    ``fn`` must have no side effects outside the database (it may run several
    times). Options: ``idempotent``, ``read_only``, ``isolation_level``,
    ``attempts`` and ``max_seconds`` (default DATABASE_RETRY_ATTEMPTS and
    DATABASE_RETRY_MAX_SECONDS); see :func:`atsboost.runtime.retry.run_transaction`.
    """
    return default.run_transaction(fn, engine=engine, **options)


def transaction(
    *, engine: Engine | None = None, **options: Unpack[TransactionOptions]
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate ``fn(session, *args)`` so every call runs through ``run_transaction`` with ``options``."""

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            return run_transaction(lambda session: fn(session, *args, **kwargs), engine=engine, **options)

        return wrapper

    return decorate


def startup(settings: Settings | None = None, *, handle_signals: bool = False) -> Engine:
    """Prepare the database before the application serves requests, and return the engine.

    Validates the settings; connects, retrying with backoff for up to
    DATABASE_CONNECT_TIMEOUT in total (during a deploy the database may still be
    starting), then fails with a clear error; applies pending revisions (unless
    DATABASE_MIGRATE_ON_STARTUP=false) under the migration lock and the production
    force gate, failing fast when the gate is closed; starts the health monitor when
    configured (on by default in production); and, with ``handle_signals=True``,
    shuts down gracefully on SIGTERM/SIGINT.
    """
    return default.startup(settings, handle_signals=handle_signals)


def health_state() -> dict[str, Any]:
    """Return the database's health as a plain dict, for a readiness endpoint.

    With the monitor running this is its latest state (no query); without it, one
    check runs now.
    """
    return default.health_state()


def shutdown(timeout: float = 10.0) -> ShutdownReport | None:
    """Shut the process-wide engine down gracefully; safe to call twice (the second does nothing)."""
    return default.shutdown(timeout)


def after_fork() -> None:
    """Call in a forked worker (gunicorn ``post_fork``): drop the parent's connections, unclosed.

    The worker then opens its own; a monitor that was running is restarted in it.
    """
    default.after_fork()


def dispose_engine() -> None:
    """Close the process-wide engine's connections and forget it; the next use rebuilds it."""
    default.dispose()
