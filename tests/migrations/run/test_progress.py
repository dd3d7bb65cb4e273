"""A long migration says what it is doing: each statement as it starts, who it waits for, each batch."""

import json
import os
import select
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from atsboost.migrations.run.progress import describe, shown
from tests.conftest import add_revision

STATEMENTS = """
op.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
op.execute("INSERT INTO notes SELECT i, NULL FROM generate_series(1, 5000) i")
op.execute("ALTER TABLE notes ADD COLUMN seen boolean")
op.create_index("notes_body", "notes", ["body"])  # atsboost: allow AB001 -- a new table
ops.backfill("notes", "body = 'x'", "body IS NULL", batch_size=1000)
"""


@pytest.fixture
def project(alembic_project, environ):
    add_revision(alembic_project, "prog0001", "from atsboost.migrations import ops\n" + STATEMENTS)
    return {**environ, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("ALTER TABLE users ADD COLUMN x int", ("ALTER TABLE", "users")),
        (
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ix ON public.users (a)",
            ("CREATE UNIQUE INDEX CONCURRENTLY", "public.users"),
        ),
        ('CREATE INDEX ix ON "Users" (a)', ("CREATE INDEX", '"Users"')),
        ("UPDATE users SET x = 1 WHERE ctid IN (SELECT ctid FROM users)", ("UPDATE", "users")),
        ("INSERT INTO plans (a) VALUES (1)", ("INSERT INTO", "plans")),
        ("CREATE TABLE IF NOT EXISTS notes (id int)", ("CREATE TABLE", "notes")),
        ("CREATE EXTENSION pg_trgm", ("CREATE EXTENSION", None)),
        ("CREATE TRIGGER t BEFORE UPDATE ON users EXECUTE FUNCTION f()", ("CREATE TRIGGER", "users")),
    ],
)
def test_a_statement_is_told_by_its_kind_and_table(statement, expected):
    line = shown(statement)
    assert line is not None and describe(line) == expected


def test_reads_settings_and_bookkeeping_are_not_shown():
    for quiet in ("SELECT 1", "SET lock_timeout = '5s'", "UPDATE alembic_version SET version_num='x'"):
        assert shown(quiet) is None


def test_each_statement_and_batch_is_a_line_as_it_starts(invoke, project):
    done = invoke("migrate", env=project)
    assert done.returncode == 0, done.stderr
    lines = [
        line.split(": ", 1)[1]
        for line in done.stderr.splitlines()
        if line.startswith("INFO atsboost.migrations")
    ]
    assert [line for line in lines if line.startswith("prog0001: ")] == [
        "prog0001: CREATE TABLE notes",
        "prog0001: INSERT INTO notes",
        "prog0001: ALTER TABLE notes",
        "prog0001: CREATE INDEX notes",
        "prog0001: UPDATE notes",
        "prog0001: UPDATE notes",
        "prog0001: UPDATE notes",
        "prog0001: UPDATE notes",
        "prog0001: UPDATE notes",
        "prog0001: UPDATE notes",  # the sixth batch finds nothing left: the backfill is done
    ]
    batches = [line for line in lines if line.startswith("backfill notes: ")]
    assert [b.split(",")[0] for b in batches] == [
        f"backfill notes: {n} of 5000 rows ({n // 50} %)" for n in (1000, 2000, 3000, 4000, 5000)
    ]
    assert batches[-1].endswith("about 0 s left")


def test_json_logs_carry_each_statement_s_fields(invoke, project):
    done = invoke("--log-format", "json", "migrate", env=project)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines()]
    statements = [e for e in events if e.get("event") == "migration_statement"]
    assert {(e["revision"], e["statement"], e["table"]) for e in statements} >= {
        ("prog0001", "ALTER TABLE", "notes"),
        ("prog0001", "CREATE INDEX", "notes"),
    }
    progress = [e for e in events if e.get("event") == "backfill_progress"]
    assert [e["rows"] for e in progress] == [1000, 2000, 3000, 4000, 5000]
    assert all(e["rows_total"] == 5000 and e["rows_per_second"] > 0 for e in progress)


def started(command, env, cwd, *, stderr):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ATSBOOST_", "DATABASE_", "MIGRATION_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "atsboost", *command],
        env={**base, **env, "MIGRATION_LOCK_TIMEOUT": "60"},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def read_until(fd, wanted, seconds=60):
    """Read ``fd`` until ``wanted`` shows (or ``seconds`` pass); return what was read."""
    got = b""
    deadline = time.monotonic() + seconds
    while wanted not in got and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a pty's other end closed
                break
            if not chunk:
                break
            got += chunk
    return got


@pytest.fixture
def holder(make_engine):
    """A session that holds a table's lock until told to let go."""
    engine = make_engine(DATABASE_APPLICATION_NAME="holder")
    conn = engine.connect()
    conn.execute(text("CREATE TABLE held (id int)"))
    conn.commit()
    conn.execute(text("LOCK TABLE held IN ACCESS SHARE MODE"))  # an ALTER TABLE must wait for it
    yield conn
    conn.rollback()
    conn.close()


def test_a_statement_that_waits_names_who_it_waits_for(alembic_project, environ, holder, tmp_path):
    add_revision(alembic_project, "wait0001", 'op.execute("ALTER TABLE held ADD COLUMN c int")')
    env = {**environ, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    migrate = started(["migrate"], env, tmp_path, stderr=subprocess.PIPE)
    try:
        assert migrate.stderr is not None
        seen = read_until(migrate.stderr.fileno(), b"waiting ")
        holder.rollback()  # let it go only once the wait was named
        _, rest = migrate.communicate(timeout=60)
    finally:
        migrate.kill()
    out = (seen + rest).decode()
    assert migrate.returncode == 0, out
    assert "wait0001: ALTER TABLE held" in out
    [waiting] = [line for line in out.splitlines() if "waiting" in line]
    assert waiting.startswith("WARNING atsboost.migrations.run.locks: waiting ")
    assert (
        " s for a lock on held held by pid " in waiting and "(user postgres, application holder, " in waiting
    )


def test_on_a_terminal_the_running_statement_has_a_live_timer(alembic_project, environ, holder, tmp_path):
    add_revision(alembic_project, "live0001", 'op.execute("ALTER TABLE held ADD COLUMN c int")')
    env = {**environ, "ATSBOOST_ALEMBIC_INI": str(alembic_project)}
    main, terminal = os.openpty()
    try:
        migrate = started(["migrate"], env, tmp_path, stderr=terminal)
        os.close(terminal)
        seen = read_until(main, b"waiting for held, held by pid")
        holder.rollback()
        seen += read_until(main, b"applied live0001")
        migrate.wait(60)
        seen += read_until(main, b"\n\n", seconds=1)  # what is left: the line taken off
    finally:
        migrate.kill()
        os.close(main)
    out = seen.decode()
    assert migrate.returncode == 0, out
    redraws = [part for part in out.split("\r\x1b[K") if part.startswith("live0001: ALTER TABLE held ... ")]
    timers = [float(part.split(" ... ")[1].split(" s")[0]) for part in redraws]
    assert len(timers) >= 2 and timers == sorted(timers)  # the timer ran while the statement waited
    assert any("; waiting for held, held by pid" in part for part in redraws)
