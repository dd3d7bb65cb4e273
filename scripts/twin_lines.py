"""Count the lines the sync and asyncio twins keep by hand: async lines equal to sync ones.

Each pair's asyncio file is compared with its sync file after normalising what only
says "async" (``async``/``await``, ``Async``/``async_`` prefixes, ``asyncio.sleep``);
a line counts when the sync file has an equal one (each sync line matched once).
Only code counts: docstrings, comments, imports, blank lines and lines of three
characters or fewer (a closing bracket) are left out.

    python scripts/twin_lines.py            # this checkout
    python scripts/twin_lines.py --json
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "atsboost"
# Each twin's sync and asyncio file; the second name of a pair is where it lived before
# runtime/ had folders, so an older checkout can be measured too (--package).
PAIRS = [
    (("db.py",), ("aio.py",)),
    (("runtime/database.py",), ("runtime/aio/database.py", "runtime/async_database.py")),
    (("runtime/monitor.py",), ("runtime/aio/monitor.py", "runtime/async_monitor.py")),
    (("runtime/retry.py",), ("runtime/aio/retry.py", "runtime/async_retry.py")),
    (("runtime/shutdown.py",), ("runtime/aio/shutdown.py", "runtime/async_shutdown.py")),
    (("runtime/engine.py",), ("runtime/aio/engine.py", "runtime/async_engine.py")),
    (("runtime/pool/queue.py", "runtime/pool.py"), ("runtime/aio/pool.py", "runtime/async_pool.py")),
]
_ASYNC = [
    (re.compile(r"\basync (def|with|for)\b"), r"\1"),
    (re.compile(r"\bawait "), ""),
    (re.compile(r"\bAsync(?=[A-Z])"), ""),
    (re.compile(r"\basync_(?=\w)"), ""),
    (re.compile(r"\basyncio\.sleep\b"), "time.sleep"),
    (re.compile(r"\(async\)|asyncio"), ""),
]


def not_code(source: str) -> set[int]:
    """The line numbers of the source's docstrings and imports."""
    skipped: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
        if docstring and isinstance(first.value.value, str):  # type: ignore[union-attr]
            skipped |= set(range(first.lineno, (first.end_lineno or first.lineno) + 1))  # type: ignore[union-attr]
        if isinstance(node, ast.Import | ast.ImportFrom):
            skipped |= set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return skipped


def normalised(path: Path) -> list[str]:
    """The file's lines of code, stripped, with what only says "async" taken out."""
    source = path.read_text()
    skipped = not_code(source)
    lines = []
    for number, raw in enumerate(source.splitlines(), start=1):
        line = raw.split("  #")[0].strip()
        if number in skipped or line.startswith("#"):
            continue
        for pattern, replacement in _ASYNC:
            line = pattern.sub(replacement, line)
        if len(line) > 3:
            lines.append(line)
    return lines


def twin(sync: Path, asynchronous: Path) -> dict[str, int]:
    """The async file's lines, and how many of them equal a line of the sync file."""
    available = collections.Counter(normalised(sync))
    lines = normalised(asynchronous)
    equal = 0
    for line in lines:
        if available[line] > 0:
            available[line] -= 1
            equal += 1
    return {"async_lines": len(lines), "equal_to_sync": equal}


def measure(package: Path) -> dict[str, dict[str, int]]:
    """Every pair found in ``package``, by its asyncio file."""
    found = {}
    for syncs, asynchronous in PAIRS:
        sync = next((package / name for name in syncs if (package / name).is_file()), None)
        twin_file = next((name for name in asynchronous if (package / name).is_file()), None)
        if sync is not None and twin_file is not None:
            found[asynchronous[0]] = twin(sync, package / twin_file)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", type=Path, default=PACKAGE, help="the atsboost folder to measure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    found = measure(args.package)
    total = sum(p["async_lines"] for p in found.values())
    equal = sum(p["equal_to_sync"] for p in found.values())
    if args.json:
        print(json.dumps({"pairs": found, "async_lines": total, "equal_to_sync": equal}, indent=2))
        return
    for name, pair in found.items():
        share = pair["equal_to_sync"] / pair["async_lines"] if pair["async_lines"] else 0
        print(
            f"{name:32} {pair['equal_to_sync']:4} of {pair['async_lines']:4} async lines equal ({share:.0%})"
        )
    print(f"{'all pairs':32} {equal:4} of {total:4} ({equal / total:.0%})")


if __name__ == "__main__":
    main()
