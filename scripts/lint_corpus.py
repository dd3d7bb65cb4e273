"""The lint's corpus through atsboost and through squawk: what each catches, and where each is wrong.

    python scripts/lint_corpus.py                 # prints the confusion table (Markdown)
    python scripts/lint_corpus.py --json out.json # and every case's verdicts

Each case of tests/migrations/lint/corpus.py becomes a revision on top of
atsboost's schema; its offline SQL (what `alembic upgrade --sql` prints for it)
goes to squawk (`squawk-cli`, with its rules about lock hazards and breaking
changes; the rules about timeouts, retries and column-type taste are left out,
see SQUAWK_EXCLUDED), and the revision to `atsboost.migrations.lint.lint`. A
dangerous case counts as caught by a tool when the tool reports anything on it;
a safe case with any report is a false positive. Needs no database.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from atsboost.config.settings import load_settings  # noqa: E402
from atsboost.migrations.lint import lint  # noqa: E402
from tests.conftest import add_revision  # noqa: E402
from tests.migrations.lint.corpus import DANGEROUS, SAFE, SETUP, Case  # noqa: E402

# squawk's rules that are not about locks or about breaking the running code: atsboost sets
# lock_timeout and statement_timeout itself, runs each revision in a transaction, and leaves
# column-type taste to the team.
SQUAWK_EXCLUDED = (
    "require-lock-timeout",
    "require-statement-timeout",
    "require-timeout-settings",
    "prefer-robust-stmts",
    "transaction-nesting",
    "ban-uncommitted-transaction",
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
    "prefer-identity",
    "prefer-timestamptz",
    "prefer-text-field",
    "ban-char-field",
    "identifier-too-long",
    "ban-duplicate-column-assignments",
    "require-enum-value-ordering",
    "ban-create-domain-with-constraint",
    "ban-alter-domain-with-add-constraint",
)


def project(folder: Path) -> Path:
    """Copy atsboost's Alembic project into ``folder``; return its alembic.ini."""
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "alembic", folder / "alembic", ignore=ignore)
    versions = REPO / "atsboost" / "migrations" / "versions"
    shutil.copytree(versions, folder / "alembic" / "versions", ignore=ignore, dirs_exist_ok=True)
    ini = re.sub(r"(?m)^version_locations = .*\n", "", (REPO / "alembic.ini").read_text())
    (folder / "alembic.ini").write_text(ini)
    return folder / "alembic.ini"


def verdicts(case: Case, folder: Path) -> dict[str, object]:
    """Lint one case with atsboost and with squawk; return what each reported."""
    ini = project(folder)
    add_revision(ini, "corpus00", SETUP)
    add_revision(ini, "case01", case.body)
    environ = {"DATABASE_URL": "postgresql://lint@localhost/lint", "ATSBOOST_ALEMBIC_INI": str(ini)}
    report = lint(load_settings(environ, cwd=folder), span="base:heads")
    ours = sorted({f.rule for f in report.findings if f.revision == "case01" and f.waived is None})
    sql = folder / "case.sql"
    sql.write_text(report.rendered.get("case01", ""))
    return {"case": case.name, "dangerous": bool(case.rules), "atsboost": ours, "squawk": squawk(sql)}


def squawk(path: Path) -> list[str]:
    """Return the rules squawk reports on the SQL file at ``path``."""
    command = ["squawk", "--reporter", "json", "--pg-version", "16", "--exclude", ",".join(SQUAWK_EXCLUDED)]
    done = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=60)
    if done.returncode not in (0, 1) or not done.stdout.strip().startswith("["):
        raise SystemExit(f"squawk failed on {path}: {done.stderr.strip() or done.stdout.strip()}")
    return sorted({violation["rule_name"] for violation in json.loads(done.stdout)})


def table(results: list[dict[str, object]]) -> str:
    """Return the confusion table, in Markdown."""
    dangerous = [r for r in results if r["dangerous"]]
    safe = [r for r in results if not r["dangerous"]]
    rows = [f"| | caught / {len(dangerous)} dangerous | false positives / {len(safe)} safe |"]
    rows.append("|---|---|---|")
    for tool in ("atsboost", "squawk"):
        caught = sum(1 for r in dangerous if r[tool])
        wrong = sum(1 for r in safe if r[tool])
        rows.append(f"| {tool} | {caught} | {wrong} |")
    return "\n".join(rows)


def main() -> None:
    """Run every case through both tools and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write every case's verdicts here")
    args = parser.parse_args()
    if shutil.which("squawk") is None:
        raise SystemExit("squawk is not installed; pip install squawk-cli")
    os.environ.pop("DATABASE_URL", None)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for number, case in enumerate([*DANGEROUS, *SAFE]):
            results.append(verdicts(case, Path(scratch) / str(number)))
    print(table(results))
    for tool, other in (("atsboost", "squawk"), ("squawk", "atsboost")):
        missed = [r["case"] for r in results if r["dangerous"] and not r[tool] and r[other]]
        wrong = [f"{r['case']} ({', '.join(r[tool])})" for r in results if not r["dangerous"] and r[tool]]
        print(f"\n{tool} misses what {other} catches: {', '.join(missed) or 'none'}")
        print(f"{tool} false positives: {', '.join(wrong) or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
