"""Listeners told of each figure as it is recorded: for exporters that cannot read a snapshot.

Most exporters read ``snapshot()`` when they are scraped. Two cannot: an
OpenTelemetry histogram takes single observations, and prometheus_client's
multi-process mode (gunicorn) keeps each worker's figures in files that the
scraping worker reads. Such an exporter adds a listener to the registry; every
counter increment and histogram observation then reaches it too. Without
listeners, recording a figure costs one empty loop more.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Listener(Protocol):
    """Receives every figure as it is recorded; it must be quick and must not raise."""

    def counted(self, pool: str | None, figure: str, label: str | None, n: int) -> None:
        """Take note that ``figure`` (a ``snapshot()`` key) of ``pool`` (None: migrations) grew by ``n``.

        ``label`` says which part: the reason of ``closed``, the outcome of
        ``transactions``, the SQLSTATE of ``retries``; None for the others.
        """
        ...

    def observed(self, pool: str | None, figure: str, value: float) -> None:
        """Take note that a histogram of ``pool`` (None: migrations) recorded ``value`` (seconds)."""
        ...


class Listeners:
    """A registry's listeners: replaced as a whole on change, so recording reads them without a lock."""

    __slots__ = ("_lock", "all")

    def __init__(self) -> None:
        self.all: tuple[Listener, ...] = ()
        self._lock = threading.Lock()

    def add(self, listener: Listener) -> None:
        """Tell ``listener`` of every figure recorded from now on (once, however often it is added)."""
        with self._lock:
            if not any(known is listener for known in self.all):
                self.all = (*self.all, listener)

    def remove(self, listener: Listener) -> None:
        """Stop telling ``listener``."""
        with self._lock:
            self.all = tuple(known for known in self.all if known is not listener)
