"""gunicorn: the server hooks a ``gunicorn.conf.py`` imports, for ``atsboost.db`` under pre-fork workers.

    # gunicorn.conf.py
    from atsboost.integrations.gunicorn import child_exit, post_fork, worker_exit

    preload_app = True  # the app module's startup() migrates once, in the master

``post_fork`` makes each worker open its own connections (never the master's),
``worker_exit`` shuts the worker's database down within gunicorn's graceful timeout,
and ``child_exit`` takes a dead worker's live gauges out of prometheus_client's
multi-process sums (when ``PROMETHEUS_MULTIPROC_DIR`` is set).
"""

from __future__ import annotations

import os
from typing import Any

from atsboost import db

__all__ = ["child_exit", "post_fork", "worker_exit"]

_MARGIN = 1.0  # seconds left to the worker after the shutdown, within gunicorn's graceful timeout


def post_fork(server: Any, worker: Any) -> None:
    """In the new worker: drop the master's connections unclosed; the worker opens its own."""
    db.after_fork()


def worker_exit(server: Any, worker: Any) -> None:
    """As the worker exits: drain and close its connections before gunicorn's graceful timeout."""
    graceful = float(getattr(server.cfg, "graceful_timeout", 30))
    db.shutdown(timeout=max(graceful - _MARGIN, _MARGIN))


def child_exit(server: Any, worker: Any) -> None:
    """In the master, when a worker has died: its live gauges leave prometheus_client's sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # prometheus_client's own switch, read as it reads it
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
