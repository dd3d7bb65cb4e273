"""The connection pool and what it is made of.

``queue`` (the pool itself: idle timeout, validation, draining), the fair hand-off to waiting
threads (``waiting``), its counters (``metrics``), and the one adapter over SQLAlchemy's private
pool members (``internals``).
"""

from atsboost.runtime.pool.queue import IdleTimeoutQueuePool

__all__ = ["IdleTimeoutQueuePool"]
