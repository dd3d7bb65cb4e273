"""One application database for asyncio code: the twin of ``runtime.database.Database``.

The same settings give the same engine parameters, retry budget, monitor and
shutdown sequence; only the waiting happens on the event loop. ``atsboost.aio``'s
functions are a facade over a default instance.

An AsyncEngine's connections belong to the event loop that opened them. When the
engine is used from another loop (a second ``asyncio.run``, a test framework's
loop per test), the previous loop's idle connections are closed without awaiting
(that loop has ended) and the new loop opens its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, Unpack

from atsboost.config.settings import Settings
from atsboost.runtime.aio import retry as async_retry
from atsboost.runtime.aio.engine import AsyncEngine, AsyncSession, create_async_engine
from atsboost.runtime.aio.monitor import AsyncHealthMonitor
from atsboost.runtime.aio.pool import AsyncIdleTimeoutPool
from atsboost.runtime.aio.shutdown import shutdown_async_engine
from atsboost.runtime.database import BaseDatabase, BeforeServing
from atsboost.runtime.retry import TransactionOptions
from atsboost.runtime.shutdown import ShutdownReport

logger = logging.getLogger("atsboost.runtime.database")

T = TypeVar("T")


class AsyncDatabase(BaseDatabase[AsyncEngine]):
    """The AsyncEngine, sessions, health monitor and lifecycle of one database, built lazily."""

    asynchronous = True
    create = staticmethod(create_async_engine)

    def __init__(
        self, settings: Settings | None = None, *, before_serving: Sequence[BeforeServing] | None = None
    ) -> None:
        super().__init__(settings, before_serving=before_serving)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._monitor: AsyncHealthMonitor | None = None

    def get_engine(self) -> AsyncEngine:
        """Return the AsyncEngine, built on first use (in development without DATABASE_URL: embedded)."""
        engine = self._engine_built_once()
        if not self._bound:  # a lent engine is on its lender's loop
            self._follow_loop(engine)
        return engine

    @asynccontextmanager
    async def session_scope(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        """Yield an AsyncSession that commits when the block succeeds and rolls back when it raises.

        ``read_only=True``: a READ ONLY transaction, on a read replica when one is usable.
        """
        primary = self.get_engine()
        engine = (await self._router(primary))() if read_only else primary
        async with async_retry.session_scope(engine, read_only=read_only) as session:
            yield session
        if not read_only:
            self.reads.wrote()

    async def run_transaction(
        self,
        fn: Callable[[AsyncSession], Awaitable[T]],
        *,
        engine: AsyncEngine | None = None,
        **options: Unpack[TransactionOptions],
    ) -> T:
        """Run ``await fn(session)`` through :func:`atsboost.runtime.aio.retry.run_transaction`.

        On this database's engine (or ``engine``), with the retry budget of its settings
        unless ``attempts`` or ``max_seconds`` are given. With ``read_only=True`` and no
        ``engine``, on a read replica when one is usable (``runtime.replicas``).
        """
        primary = engine or self.get_engine()
        read_only = options.get("read_only", False)
        route = await self._router(primary) if read_only and engine is None else None
        result = await async_retry.run_transaction(
            fn, engine=primary, route=route, **self.retry_options(options)
        )
        if not read_only:
            self.reads.wrote()
        return result

    async def _router(self, primary: AsyncEngine) -> Callable[[], AsyncEngine]:
        """Return the engine chooser of one read-only transaction; stale lag readings taken in a thread."""
        reads = self.reads
        if not reads.sticky():
            await asyncio.to_thread(reads.replicas.measure_stale)
        return reads.router(primary)

    async def startup(self, settings: Settings | None = None) -> AsyncEngine:
        """Prepare the database before serving: wait for it, run ``before_serving``, start the monitor."""
        if settings is not None and settings is not self._settings:
            await self.dispose()
            self._settings = settings
        settings = self.settings
        engine = self.get_engine()
        await async_retry.wait_for_database(engine, seconds=settings.connect_timeout)
        for prepare in self.before_serving:
            # A hook is synchronous (Alembic is): a worker thread keeps the loop serving meanwhile.
            await asyncio.to_thread(prepare, settings)
        if settings.runtime.monitor and self._monitor is None and not self._bound:
            self._monitor = AsyncHealthMonitor(engine, settings)
            await self._monitor.check()  # so that health_state() is known from the first request
            self._monitor.start()
        return engine

    async def health_state(self) -> dict[str, Any]:
        """Return the database's health as a plain dict: the monitor's latest state, else one check now."""
        if self._monitor is not None:
            return self._monitor.state().as_dict()
        monitor = AsyncHealthMonitor(self.get_engine(), self.settings)
        try:
            return (await monitor.check()).as_dict()
        finally:
            await monitor.stop()

    async def shutdown(self, timeout: float = 10.0) -> ShutdownReport | None:
        """Shut down gracefully (drain, wait, cancel, close); the second call does nothing."""
        if self._bound:
            return None  # a lent engine is its lender's to close
        engine, monitor = self._engine, self._monitor
        self._engine, self._monitor, self._loop = None, None, None
        if engine is None:
            if monitor is not None:
                await monitor.stop()
            return None
        report = await shutdown_async_engine(engine, timeout=timeout, monitor=monitor)
        await self._close_replicas()  # reads still running finished while the primary drained
        return report

    async def dispose(self) -> None:
        """Close the engine's connections and forget it (and the monitor); the next use rebuilds it."""
        if self._bound:
            return  # a lent engine is its lender's to close
        engine, monitor = self._engine, self._monitor
        self._engine, self._monitor, self._loop = None, None, None
        if monitor is not None:
            await monitor.stop()
        if engine is not None:
            await engine.dispose()
        await self._close_replicas()

    async def _close_replicas(self) -> None:
        replicas = self._reads.detach() if self._reads is not None else None
        for replica in replicas.replicas if replicas is not None else []:
            await replica.engine.dispose()
            replica.probe.dispose()

    def _follow_loop(self, engine: AsyncEngine) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # built outside a loop (at import): bound on first use
            return
        if self._loop is loop:
            return
        if self._loop is not None:
            pool = engine.sync_engine.pool
            closed = pool.close_idle_of_ended_loop() if isinstance(pool, AsyncIdleTimeoutPool) else 0
            logger.info("the event loop changed: closed the previous loop's %d idle connection(s)", closed)
            self._monitor = None  # its task ended with its loop
            engine.sync_engine.dispose(close=False)  # a new pool; nothing is awaited
            replicas = self._reads.detach() if self._reads is not None else None
            for replica in replicas.replicas if replicas is not None else []:  # rebuilt on this loop
                replica.engine.sync_engine.dispose(close=False)
                replica.probe.dispose()
        self._loop = loop
