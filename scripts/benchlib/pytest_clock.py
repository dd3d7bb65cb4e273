"""A pytest plugin for the benchmarks: each test's set-up, call and teardown times, to a JSON file.

Loaded with ``-p benchlib.pytest_clock``; BENCH_CLOCK_FILE names the file. pytest's own
``--durations`` prints hundredths of a second, too coarse for a fixture's cost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

_DURATIONS: dict[str, list[float]] = {"setup": [], "call": [], "teardown": []}


def pytest_runtest_logreport(report: Any) -> None:
    _DURATIONS[report.when].append(report.duration)


def pytest_sessionfinish(session: Any) -> None:
    target = os.environ.get("BENCH_CLOCK_FILE")
    if target:
        Path(target).write_text(json.dumps(_DURATIONS))
