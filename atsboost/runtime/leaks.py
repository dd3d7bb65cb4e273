"""Leak detection: name the code that took a connection and never gave it back.

With ``DATABASE_LEAK_THRESHOLD`` set (default 60 s in development and testing, off
in production unless set), every checkout records a cheap stack summary; a
connection held longer than the threshold is reported once, at WARNING, with the
file and line of the application code that took it.
"""

from __future__ import annotations

import functools
import logging
import os
import sysconfig
import traceback
from pathlib import Path

logger = logging.getLogger(__name__)


def capture_stack() -> traceback.StackSummary:
    """Return the caller's stack without reading source lines (that happens only if reported)."""
    return traceback.StackSummary.extract(traceback.walk_stack(None), lookup_lines=False)


def taken_at(stack: traceback.StackSummary) -> traceback.FrameSummary | None:
    """Return the innermost frame outside SQLAlchemy, atsboost and the standard library."""
    for frame in stack:  # innermost first, as walk_stack yields
        if not _is_plumbing(frame.filename):
            return frame
    return None


def report(held_seconds: float, threshold: float, stack: traceback.StackSummary) -> None:
    """Log one leak at WARNING with where it was taken and the full stack."""
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
