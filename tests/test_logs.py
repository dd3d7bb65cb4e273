"""JSON log lines: each parses on its own, carries its event's fields, and holds no planted secret."""

import io
import json
import logging
import time

from sqlalchemy import text

from atsboost.logs import JsonLogFormatter, mask
from atsboost.runtime.retry import run_transaction

SECRET = "Js0n-l0g-s3cret-planted"
ADMIN = "Adm1n-js0n-correct-horse-planted"


def json_lines(stderr):
    """Every line of stderr as a parsed object; a line that is not JSON fails the test."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def test_every_line_on_stderr_is_json_with_its_fields_and_no_secret(invoke, database_url, unused_tcp_port):
    url = database_url.set(password=SECRET).render_as_string(hide_password=False)
    env = {"ATSBOOST_ENV": "testing", "DATABASE_URL": url, "ADMIN_INITIAL_PASSWORD": ADMIN}
    runs = [
        invoke("--log-format", "json", "init", env=env),
        invoke("--log-format", "json", "migrate", "status", env=env),
        invoke("--log-format", "json", "health", env=env),
        invoke("--log-format", "json", "--debug", "migrate", "downgrade", "nosuchrevision", env=env),
    ]
    down = database_url.set(host="127.0.0.1", port=unused_tcp_port, query={}, password=SECRET)
    runs.append(
        invoke(
            "--log-format",
            "json",
            "migrate",
            env={**env, "DATABASE_URL": down.render_as_string(hide_password=False)},
        )
    )
    assert [r.returncode for r in runs] == [0, 0, 0, 1, 1], [r.stderr for r in runs]

    lines = [line for run in runs for line in json_lines(run.stderr)]
    assert all({"timestamp", "level", "logger", "message"} <= line.keys() for line in lines)
    applied = [line for line in lines if line.get("event") == "migration_applied"]
    assert [line["revision"] for line in applied] == ["055d037ec299", "7c1f9a2b4d10"]
    assert all(line["duration_seconds"] >= 0 for line in applied)
    failed = [line for line in lines if line.get("event") == "command_failed"]
    assert len(failed) == 2 and "cannot connect to" in failed[1]["message"]
    assert "Traceback" in failed[0]["exc_info"]  # --debug: the traceback travels inside the line
    printed = "".join(run.stdout + run.stderr for run in runs)
    assert SECRET not in printed and ADMIN not in printed


def test_an_application_sees_each_retry_with_its_sqlstate_and_attempt(make_engine):
    engine = make_engine()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("atsboost.runtime.retry")
    logger.addHandler(handler)
    attempts = []

    def lose_the_first_connection(session):
        attempts.append(1)
        if len(attempts) == 1:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with engine.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            time.sleep(0.1)
        return session.execute(text("SELECT 1")).scalar_one()

    try:
        assert run_transaction(lose_the_first_connection, engine=engine) == 1
    finally:
        logger.removeHandler(handler)
    [retry] = json_lines(stream.getvalue())
    assert retry["event"] == "transaction_retry" and retry["level"] == "WARNING"
    assert retry["sqlstate"] == "57P01" and retry["attempt"] == 2 and retry["delay_seconds"] >= 0


def test_passwords_from_elsewhere_are_masked_too():
    assert mask("postgresql://app:hunter2@db/x and password=hunter2 or password='a b'") == (
        "postgresql://app:***@db/x and password=*** or password=***"
    )
