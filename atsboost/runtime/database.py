"""One application database as an object: its settings, engine, sessions, monitor and lifecycle.

As Flask-SQLAlchemy keeps its state on the extension object, a :class:`Database`
holds everything about one database, so two can live side by side and a test can
make its own. ``atsboost.db``'s functions are a facade over a default instance.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar, Unpack

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from atsboost.config.settings import Settings, get_settings
from atsboost.runtime import database_wait, retry
from atsboost.runtime.engine import create_engine
from atsboost.runtime.monitor import HealthMonitor
from atsboost.runtime.replicas import Reads, ReplicaSet
from atsboost.runtime.retry import TransactionOptions, connection_options
from atsboost.runtime.shutdown import ShutdownReport, install_signal_handlers, shutdown_engine

T = TypeVar("T")
E = TypeVar("E")  # an Engine, or an AsyncEngine

BeforeServing: TypeAlias = Callable[[Settings], object]
"""What ``startup()`` runs once the database answers and before the application serves.

The runtime knows no migrations: ``atsboost.db`` and ``atsboost.aio`` hand it
``atsboost.migrations.before_serving`` (apply pending revisions), and an
application may hand it anything else that takes the settings (a warm-up, a check).
"""


class BaseDatabase(Generic[E]):
    """What the sync and the asyncio database share: settings, engine, replicas, lock, budget, hooks.

    A twin says how it builds an engine (``create``) and what else it does once one is
    built (``_built``); building the engine and the replicas happens here, once, under
    one lock, for both.
    """

    asynchronous: ClassVar[bool]
    create: Callable[[Settings], E]
    default_before_serving: ClassVar[tuple[BeforeServing, ...]] = ()  # ``atsboost.db``'s: migrate

    def __init__(
        self, settings: Settings | None = None, *, before_serving: Sequence[BeforeServing] | None = None
    ) -> None:
        self._settings = settings
        self.before_serving = self.default_before_serving if before_serving is None else tuple(before_serving)
        self._lock = threading.RLock()  # the engine's and the replicas' building, the lifecycle
        self._engine: E | None = None
        self._reads: Reads[E] | None = None
        self._bound = False  # using an engine it was lent (``bound``), which it must not close

    @contextmanager
    def bound(self, engine: E, settings: Settings) -> Iterator[E]:
        """Use ``engine`` and ``settings`` until the block ends, then what was used before.

        For a test that lends the application its own connection (``atsboost.testing``):
        meanwhile every session and transaction goes to ``engine``, ``startup()`` starts
        no monitor, and ``shutdown()`` and ``dispose()`` leave the engine to its lender.
        """
        with self._lock:
            saved = (self._settings, self._engine, self._reads, self._bound)
            self._settings, self._engine, self._reads, self._bound = settings, engine, None, True
        try:
            yield engine
        finally:
            with self._lock:
                self._settings, self._engine, self._reads, self._bound = saved

    @property
    def reads(self) -> Reads[E]:
        """Where read-only transactions go: the replicas of the settings, or the primary."""
        if self._reads is None:
            with self._lock:
                if self._reads is None:
                    self._reads = Reads(self.settings, type(self).create, asynchronous=self.asynchronous)
        return self._reads

    def _engine_built_once(self) -> E:
        """Return the engine, built on first use (in development without DATABASE_URL: embedded)."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    engine = type(self).create(self.settings)
                    self._built(engine)
                    self._engine = engine
        return self._engine

    def _built(self, engine: E) -> None:
        """Do what a twin does once its engine is built; nothing by default."""

    @property
    def settings(self) -> Settings:
        """The settings this database uses: the ones given, else the environment's (read once)."""
        return self._settings or get_settings()

    def retry_options(self, options: TransactionOptions) -> TransactionOptions:
        """Return ``run_transaction``'s options with the settings' retry budget where none is given."""
        runtime = self.settings.runtime
        budget = TransactionOptions(attempts=runtime.retry_attempts, max_seconds=runtime.retry_max_seconds)
        return {**budget, **options}


class Database(BaseDatabase[Engine]):
    """The engine, sessions, health monitor and lifecycle of one database, built lazily from settings."""

    asynchronous = False
    create = staticmethod(create_engine)

    def __init__(
        self, settings: Settings | None = None, *, before_serving: Sequence[BeforeServing] | None = None
    ) -> None:
        super().__init__(settings, before_serving=before_serving)
        self._monitor: HealthMonitor | None = None
        self._owner_pid: int | None = None
        self._exit_hook = False

    def get_engine(self) -> Engine:
        """Return the Engine, built on first use (in development without DATABASE_URL: embedded)."""
        return self._engine_built_once()

    def _built(self, engine: Engine) -> None:
        self._owner_pid = os.getpid()
        self._register_exit_hook()

    @contextmanager
    def session_scope(self, *, read_only: bool = False) -> Iterator[Session]:
        """Yield a Session that commits when the block succeeds and rolls back when it raises.

        ``read_only=True``: a READ ONLY transaction, on a read replica when one is usable.
        """
        primary = self.get_engine()
        engine = self.reads.router(primary)() if read_only else primary
        with session_scope(engine, read_only=read_only) as session:
            yield session
        if not read_only:
            self.reads.wrote()

    def run_transaction(
        self,
        fn: Callable[[Session], T],
        *,
        engine: Engine | None = None,
        **options: Unpack[TransactionOptions],
    ) -> T:
        """Run ``fn(session)`` through :func:`atsboost.runtime.retry.run_transaction`.

        On this database's engine (or ``engine``), with the retry budget of its settings
        unless ``attempts`` or ``max_seconds`` are given. With ``read_only=True`` and no
        ``engine``, on a read replica when one is usable (``runtime.replicas``).
        """
        primary = engine or self.get_engine()
        read_only = options.get("read_only", False)
        route = self.reads.router(primary) if read_only and engine is None else None
        result = retry.run_transaction(fn, engine=primary, route=route, **self.retry_options(options))
        if not read_only:
            self.reads.wrote()
        return result

    def startup(self, settings: Settings | None = None, *, handle_signals: bool = False) -> Engine:
        """Prepare the database before serving: wait for it, run ``before_serving``, start the monitor."""
        with self._lock:
            if settings is not None and settings is not self._settings:
                self.dispose()
                self._settings = settings
        settings = self.settings
        engine = self.get_engine()
        database_wait.wait_for_database(engine, seconds=settings.connect_timeout)
        for prepare in self.before_serving:
            prepare(settings)
        if settings.runtime.monitor and not self._bound:
            self._start_monitor(engine)  # a second startup() keeps the running one
        if handle_signals:
            install_signal_handlers(self.shutdown)
        return engine

    def health_state(self) -> dict[str, Any]:
        """Return the database's health as a plain dict: the monitor's latest state, else one check now."""
        if self._monitor is not None:
            return self._monitor.state().as_dict()
        monitor = HealthMonitor(self.get_engine(), self.settings)
        try:
            return monitor.check().as_dict()
        finally:
            monitor.stop()

    def shutdown(self, timeout: float = 10.0, *, at_exit: bool = False) -> ShutdownReport | None:
        """Shut down gracefully (drain, wait, cancel, close); the second call does nothing.

        ``at_exit`` (the interpreter is ending): connections held but running nothing are
        leaks that nobody will return, so they are closed at once and reported.
        """
        if self._bound:
            return None  # a lent engine is its lender's to close
        with self._lock:
            engine, monitor, reads = self._engine, self._monitor, self._reads
            self._engine, self._monitor, self._reads = None, None, None
        if engine is None:
            if monitor is not None:
                monitor.stop()
            return None
        report = shutdown_engine(
            engine, timeout=timeout, monitor=monitor, owner_pid=self._owner_pid, at_exit=at_exit
        )
        if reads is not None:  # reads still running finished while the primary drained
            close_replicas(reads.detach())
        return report

    def after_fork(self) -> None:
        """In a forked worker: drop the parent's connections unclosed; restart a monitor that ran."""
        with self._lock:
            if self._reads is not None:
                close_replicas(self._reads.detach(), close=False)
            if self._engine is None:
                return
            self._engine.dispose(close=False)
            self._owner_pid = os.getpid()
            if self._monitor is not None:
                self._start_monitor(self._engine, replace=True)

    def dispose(self) -> None:
        """Close the engine's connections and forget it (and the monitor); the next use rebuilds it."""
        if self._bound:
            return  # a lent engine is its lender's to close
        with self._lock:
            if self._monitor is not None:
                self._monitor.stop()
            if self._engine is not None:
                self._engine.dispose()
            if self._reads is not None:
                close_replicas(self._reads.detach())
            self._engine, self._monitor, self._reads = None, None, None

    def _start_monitor(self, engine: Engine, *, replace: bool = False) -> None:
        """Start the monitor unless one runs; ``replace``: a forked child's own, as the parent's is not."""
        with self._lock:
            if self._monitor is not None and not replace:
                return
            self._monitor = HealthMonitor(engine, self.settings)
            self._monitor.start()

    def _register_exit_hook(self) -> None:
        if not self._exit_hook:
            self._exit_hook = True
            atexit.register(self.shutdown, at_exit=True)


@contextmanager
def session_scope(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """Yield a Session on ``engine`` that commits on success and rolls back on error.

    Objects stay loaded after the commit (``expire_on_commit=False``), so they can be
    returned from the block and read without another query. ``read_only=True`` makes
    it a READ ONLY transaction (no extra round trip).
    """
    with Session(engine, expire_on_commit=False) as session:
        if read_only:
            session.connection(execution_options=connection_options(None, read_only=True))
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()


def close_replicas(replicas: ReplicaSet[Engine] | None, *, close: bool = True) -> None:
    """Close the replicas' connections (``close=False`` in a forked worker: drop them unclosed)."""
    for replica in replicas.replicas if replicas is not None else []:
        replica.engine.dispose(close=close)
        replica.probe.dispose(close=close)
