"""The application's entry points: the process-wide engine and transactional sessions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from atsboost.engine import create_engine
from atsboost.retry import run_transaction, transaction
from atsboost.settings import Settings, get_settings

__all__ = [
    "create_engine",
    "dispose_engine",
    "get_engine",
    "run_transaction",
    "session_scope",
    "startup",
    "transaction",
]

_lock = threading.Lock()
_engine: Engine | None = None
_sessions: sessionmaker[Session] | None = None


def get_engine() -> Engine:
    """Return the process-wide Engine, built from the environment on first use.

    Importing atsboost connects to nothing; the first call reads the settings, and
    in development without DATABASE_URL starts the embedded server.
    """
    global _engine, _sessions
    if _engine is None:
        with _lock:
            if _engine is None:
                engine = create_engine(get_settings())
                _sessions = sessionmaker(engine, expire_on_commit=False)
                _engine = engine
    return _engine


def dispose_engine() -> None:
    """Close the process-wide engine's connections and forget it; the next use rebuilds it."""
    global _engine, _sessions
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None
        _sessions = None


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """Yield a Session that commits when the block succeeds and rolls back when it raises.

    Objects stay loaded after the commit (``expire_on_commit=False``) so they can be
    returned from the block and read without another query.
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


def startup(settings: Settings | None = None) -> None:
    """Prepare the database before the application serves requests.

    Applies pending revisions under the migration lock and the production force
    gate, unless DATABASE_MIGRATE_ON_STARTUP=false. In production with the gate
    closed and revisions pending it fails fast, saying what is pending and how to
    apply it, instead of serving against an old schema.
    """
    from atsboost import migrations

    settings = settings or get_settings()
    if settings.migration.on_startup:
        migrations.upgrade(settings)
