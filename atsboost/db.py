"""The application's entry points: the process-wide engine, sessions, retry and lifecycle.

Importing atsboost connects to nothing. ``startup()`` prepares the database before
the application serves; ``shutdown()`` (also run at interpreter exit, and by the
opt-in signal handlers) drains it gracefully; ``after_fork()`` makes a forked
worker open its own connections.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from atsboost.config.settings import Settings, get_settings
from atsboost.runtime.engine import create_engine
from atsboost.runtime.monitor import HealthMonitor
from atsboost.runtime.retry import run_transaction, transaction, wait_for_database
from atsboost.runtime.shutdown import ShutdownReport, install_signal_handlers, shutdown_engine

__all__ = [
    "after_fork",
    "create_engine",
    "dispose_engine",
    "get_engine",
    "health_state",
    "run_transaction",
    "session_scope",
    "shutdown",
    "startup",
    "transaction",
]

_lock = threading.RLock()
_settings: Settings | None = None
_engine: Engine | None = None
_sessions: sessionmaker[Session] | None = None
_monitor: HealthMonitor | None = None
_owner_pid: int | None = None


def get_engine() -> Engine:
    """Return the process-wide Engine, built on first use from the settings.

    In development without DATABASE_URL the first call starts the embedded server.
    """
    global _engine, _sessions, _owner_pid
    if _engine is None:
        with _lock:
            if _engine is None:
                engine = create_engine(_settings or get_settings())
                _sessions = sessionmaker(engine, expire_on_commit=False)
                _owner_pid = os.getpid()
                _engine = engine
                _register_atexit()
    return _engine


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """Yield a Session that commits when the block succeeds and rolls back when it raises.

    Objects stay loaded after the commit (``expire_on_commit=False``) so they can be
    returned from the block and read without another query. For work that should
    survive a failover, prefer ``run_transaction``.
    """
    if engine is None:
        get_engine()
        assert _sessions is not None
        session = _sessions()
    else:
        session = Session(engine, expire_on_commit=False)
    with session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()


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
    from atsboost import migrations

    global _settings
    settings = settings or get_settings()
    with _lock:
        if _engine is not None and _settings is not settings:
            dispose_engine()
        _settings = settings
    engine = get_engine()
    wait_for_database(engine, seconds=settings.connect_timeout)
    if settings.migration.on_startup:
        migrations.upgrade(settings)
    if settings.runtime.monitor:
        _start_monitor(engine, settings)
    if handle_signals:
        install_signal_handlers(shutdown)
    return engine


def health_state() -> dict[str, Any]:
    """Return the database's health as a plain dict, for a readiness endpoint.

    With the monitor running this is its latest state (no query); without it, one
    check runs now.
    """
    if _monitor is not None:
        return _monitor.state().as_dict()
    monitor = HealthMonitor(get_engine(), _settings or get_settings())
    try:
        return monitor.check().as_dict()
    finally:
        monitor.stop()


def shutdown(timeout: float = 10.0) -> ShutdownReport | None:
    """Shut the process-wide engine down gracefully; safe to call twice (the second does nothing)."""
    global _engine, _sessions, _monitor
    with _lock:
        engine, monitor = _engine, _monitor
        _engine, _sessions, _monitor = None, None, None
    if engine is None:
        if monitor is not None:
            monitor.stop()
        return None
    return shutdown_engine(engine, timeout=timeout, monitor=monitor, owner_pid=_owner_pid)


def after_fork() -> None:
    """Call in a forked worker (gunicorn ``post_fork``): drop the parent's connections, unclosed.

    The worker then opens its own; a monitor that was running is restarted in it.
    """
    global _owner_pid
    with _lock:
        if _engine is not None:
            _engine.dispose(close=False)
            _owner_pid = os.getpid()
        if _monitor is not None and _engine is not None:
            _start_monitor(_engine, _monitor.settings)


def dispose_engine() -> None:
    """Close the process-wide engine's connections and forget it; the next use rebuilds it."""
    global _engine, _sessions, _monitor
    with _lock:
        if _monitor is not None:
            _monitor.stop()
        if _engine is not None:
            _engine.dispose()
        _engine, _sessions, _monitor = None, None, None


@functools.cache
def _register_atexit() -> None:
    atexit.register(shutdown)


def _start_monitor(engine: Engine, settings: Settings) -> None:
    global _monitor
    with _lock:
        _monitor = HealthMonitor(engine, settings)
        _monitor.start()
