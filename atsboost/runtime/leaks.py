"""Leak detection: name the code that took a connection and never gave it back.

With ``DATABASE_LEAK_THRESHOLD`` set (default 60 s in development and testing, off
in production unless set), every checkout records where it happened; a
connection held longer than the threshold is reported once, at WARNING, with the
file and line of the application code that took it.

Recording must cost next to nothing, since it happens at every checkout: it keeps
each frame's code object and the offset of its current instruction (a few
microseconds for a deep stack). File names, line numbers and source lines are
worked out only for a connection that is really reported.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import sysconfig
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

logger = logging.getLogger(__name__)

Captured = tuple[tuple[CodeType, int], ...]
"""A stack as recorded at checkout: (code, instruction offset) pairs, innermost first."""

_MAX_FRAMES = 64


@dataclass(slots=True)
class Checkout:
    """One connection checked out: since when (monotonic), where from, and whether it was reported."""

    since: float
    stack: Captured | None
    reported: bool = False


def report_held(checkouts: list[Checkout], threshold: float) -> int:
    """Report, once each, the checkouts held longer than ``threshold`` seconds; return how many."""
    now = time.monotonic()
    reported = 0
    for checkout in checkouts:
        held = now - checkout.since
        if held > threshold and not checkout.reported and checkout.stack is not None:
            checkout.reported = True
            report(held, threshold, checkout.stack)
            reported += 1
    return reported


def capture_stack() -> Captured:
    """Record the caller's stack as cheaply as CPython allows: no names, lines or files yet."""
    # sys._getframe is what traceback.walk_stack itself uses; walking f_back here skips
    # the FrameSummary objects that made every checkout cost about 90 us.
    frame = sys._getframe(1)
    taken: list[tuple[CodeType, int]] = []
    while frame is not None and len(taken) < _MAX_FRAMES:
        taken.append((frame.f_code, frame.f_lasti))
        frame = frame.f_back  # type: ignore[assignment]
    return tuple(taken)


def capture_task_stack() -> Captured:
    """Record the stack of a checkout in SQLAlchemy's asyncio engine, innermost first.

    There the pool runs in a greenlet whose frames end at SQLAlchemy's bridge; the
    application's coroutines are on the stack of the greenlet that switched to it
    (``parent.gr_frame``, greenlet's public API). Both are kept, as (code, offset).
    """
    import greenlet

    parent = greenlet.getcurrent().parent
    frame: Any = parent.gr_frame if parent is not None else None
    taken = list(capture_stack()[1:])
    while frame is not None and len(taken) < _MAX_FRAMES:
        taken.append((frame.f_code, frame.f_lasti))
        frame = frame.f_back
    return tuple(taken)


def summarize(captured: Captured) -> traceback.StackSummary:
    """Turn a recorded stack into file, line and function names (only for a reported leak)."""
    return traceback.StackSummary.from_list(
        [
            traceback.FrameSummary(code.co_filename, _line(code, offset), code.co_name, lookup_line=False)
            for code, offset in captured
        ]
    )


def _line(code: CodeType, offset: int) -> int | None:
    """Return the source line of the instruction at ``offset`` in ``code``."""
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line
    return code.co_firstlineno


def taken_at(stack: traceback.StackSummary) -> traceback.FrameSummary | None:
    """Return the innermost frame outside SQLAlchemy, atsboost and the standard library."""
    for frame in stack:  # innermost first, as walk_stack yields
        if not _is_plumbing(frame.filename):
            return frame
    return None


def report(held_seconds: float, threshold: float, captured: Captured) -> None:
    """Log one leak at WARNING with where it was taken and the full stack."""
    stack = summarize(captured)
    frame = taken_at(stack)
    where = f"{frame.filename}:{frame.lineno} in {frame.name}" if frame else "an unknown place"
    formatted = "".join(traceback.format_list(list(reversed(stack))))
    logger.warning(
        "a database connection has been checked out for %.0f s (DATABASE_LEAK_THRESHOLD=%gs) and not "
        "returned; it was taken at %s\n%s",
        held_seconds,
        threshold,
        where,
        formatted,
        extra={"event": "connection_leak", "held_seconds": round(held_seconds, 1), "taken_at": where},
    )


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    import sqlalchemy

    dirs = (
        Path(__file__).parent.parent,
        Path(sqlalchemy.__file__).parent,
        Path(sysconfig.get_paths()["stdlib"]),
    )
    return tuple(f"{d.resolve()}{os.sep}" for d in dirs)


def _is_plumbing(filename: str) -> bool:
    """SQLAlchemy, atsboost and the standard library: the code between the caller and the pool."""
    if filename.startswith("<"):
        return True
    path = str(Path(filename).resolve())
    installed = f"{os.sep}site-packages{os.sep}" in path or f"{os.sep}dist-packages{os.sep}" in path
    stdlib = _library_dirs()[2]
    return path.startswith(_library_dirs()[:2]) or (path.startswith(stdlib) and not installed)
