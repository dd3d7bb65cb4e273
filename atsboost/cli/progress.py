"""On a terminal, the running statement of a migration as a live line: its timer, and who it waits for.

The library logs one line per event (``migration_statement``, ``migration_lock_wait``,
``backfill_progress``, ``migration_applied``); plain and JSON output stay so. When
stderr is a terminal, ``atsboost-db`` also keeps the statement running now on the
last line, redrawn four times a second with the time it has taken, and, once the
lock watch has named who it waits for, that too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

_CLEAR = "\r\x1b[K"
_TICK = 0.25  # seconds between redraws
_ENDS = frozenset({"migration_applied", "migration_reverted", "command_failed"})


class LiveLine:
    """The last line of the terminal: what runs now and for how long."""

    def __init__(self, stream: Callable[[], TextIO]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._text: str | None = None
        self._since = 0.0
        self._waiting = ""
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def clear(self) -> None:
        """Take the live line off, so that a log line can take its place."""
        with self._lock:
            if self._text is not None:
                self._write(_CLEAR)

    def follow(self, record: Any) -> None:
        """Update the line from a log record (after it was written) and draw it again."""
        event = getattr(record, "event", None)
        with self._lock:
            if event in ("migration_statement", "backfill_progress"):
                self._text, self._since, self._waiting = record.getMessage(), time.monotonic(), ""
            elif event == "migration_lock_wait":
                waited = getattr(record, "table", None) or "a lock"
                self._waiting = f"; waiting for {waited}, held by pid {record.holder_pid}"
            elif event in _ENDS:
                self._text = None
        if self._text is not None:
            self._start()
            self.draw()

    def draw(self) -> None:
        """Write the line again with the time so far."""
        with self._lock:
            if self._text is not None:
                elapsed = time.monotonic() - self._since
                self._write(f"{_CLEAR}{self._text} ... {elapsed:.1f} s{self._waiting}")

    def stop(self) -> None:
        """Stop redrawing and take the line off (the command ends)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(1.0)
        self.clear()
        self._text = None

    def _start(self) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="atsboost-live-line", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(_TICK):
            self.draw()

    def _write(self, text: str) -> None:
        stream = self._stream()
        stream.write(text)
        stream.flush()
