"""The app-server recipes of docs/runtime.md, run as written there, as real server processes."""

import asyncio
import collections
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import recipe, wait_until
from tests.runtime.test_shutdown import our_backends

APP = "atsboost-recipe"


@pytest.fixture
def recipe_env(environ, tmp_path):
    """The process environment of a recipe's server: the test's database, and the repository importable."""
    return {
        **environ,
        "DATABASE_APPLICATION_NAME": APP,
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(tmp_path),
    }


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Send SIGTERM as a deploy would; return the exit status and what it wrote to stderr."""
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    return process.returncode, err


def terminate_backends(observer) -> int:
    """Terminate every server connection of the recipe's application; return how many."""
    with observer.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = :a"
                ),
                {"a": APP},
            ).scalar_one()
        )


async def put_plans(base: str, count: int, concurrency: int, on_progress) -> dict[int, int | None]:
    """PUT ``count`` plans from ``concurrency`` clients; ``on_progress(done)`` after each answer.

    Return each plan's status code, or None where the request got no answer.
    """
    codes: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        codes.put_nowait(i)
    statuses: dict[int, int | None] = {}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def client_loop() -> None:
            while not codes.empty():
                i = codes.get_nowait()
                body = {"name": f"Load {i}", "price_cents": i}
                try:
                    statuses[i] = (await client.put(f"/plans/load-{i:03d}", json=body)).status_code
                except httpx.TransportError:
                    statuses[i] = None
                await on_progress(len(statuses))

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return statuses


def serve(module: str, tmp_path, env, port: int) -> tuple[subprocess.Popen[str], Path]:
    """Start uvicorn on the recipe as docs/runtime.md says to run it; its output goes to a file.

    A pipe nobody reads would fill (uvicorn logs every request) and stop its event loop.
    """
    (tmp_path / f"{module}.py").write_text(recipe(f"{module}.py"))
    command = [sys.executable, "-m", "uvicorn", f"{module}:app", "--port", str(port)]
    command += ["--timeout-keep-alive", "75", "--timeout-graceful-shutdown", "20"]
    log = tmp_path / f"{module}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    return process, log


def stopped(process: subprocess.Popen[str], log: Path) -> tuple[int, str]:
    """Send SIGTERM as a deploy would; return the exit status and what the server wrote."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    return process.returncode, log.read_text()


def stored_codes(observer) -> set[str]:
    with observer.connect() as conn:
        found = conn.execute(text("SELECT code FROM subscription_plans WHERE code LIKE 'load-%'"))
        return set(found.scalars())


@pytest.mark.parametrize("module", ["main", "main_sync"])
def test_a_fastapi_app_loses_no_commit_while_its_backends_are_terminated(
    module, recipe_env, tmp_path, unused_tcp_port, make_engine
):
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")
    base = f"http://127.0.0.1:{unused_tcp_port}"
    server, log = serve(module, tmp_path, recipe_env, unused_tcp_port)
    try:
        assert wait_until(lambda: answers(base), timeout=60), "uvicorn did not start"
        assert module == "main_sync" or ready(base) == 200  # the async recipe's readiness route
        # A unique constraint checked at COMMIT: the session dependency's commit fails after the handler.
        with observer.begin() as conn:
            conn.execute(
                text(
                    "ALTER TABLE subscription_plans ADD CONSTRAINT plans_name_once UNIQUE (name) "
                    "DEFERRABLE INITIALLY DEFERRED"
                )
            )
        body = {"name": "Same", "price_cents": 1}
        first = httpx.post(f"{base}/plans/deferred-a", json=body, timeout=30)
        second = httpx.post(f"{base}/plans/deferred-b", json=body, timeout=30)
        terminated: list[int] = []

        async def kill_twice(done: int) -> None:
            if done in (250, 650) and len(terminated) < 2:
                terminated.append(await asyncio.to_thread(terminate_backends, observer))

        statuses = asyncio.run(put_plans(base, 1000, 50, kill_twice))
    finally:
        code, err = stopped(server, log)
    assert (first.status_code, second.status_code) == (201, 500), err
    with observer.connect() as conn:
        deferred = conn.execute(text("SELECT code FROM subscription_plans WHERE code LIKE 'deferred-%'"))
        assert list(deferred.scalars()) == ["deferred-a"]  # the 500's row was not saved
    assert len(terminated) == 2 and all(n >= 1 for n in terminated)  # the faults really happened
    answered = {f"load-{i:03d}" for i, status in statuses.items() if status is not None and status < 300}
    assert stored_codes(observer) == answered, collections.Counter(statuses.values())  # 2xx rows, no other
    assert list(statuses.values()) == [200] * 1000, err
    # uvicorn ran the lifespan's shutdown, with atsboost's lines shown, then ends with the signal it was sent.
    assert "INFO atsboost.runtime.shutdown: shutdown: closed every connection" in err, err
    assert "Application shutdown complete." in err and code in (0, -signal.SIGTERM), err
    assert our_backends(observer, APP) == 0


def answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/docs", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def ready(base: str) -> int | None:
    try:
        return httpx.get(f"{base}/ready", timeout=2).status_code
    except httpx.TransportError:
        return None


HANDLE = """
import asyncio, sys
from sqlalchemy import text
import worker


async def handle(session, job):
    await session.execute(text("INSERT INTO handled (job_id) VALUES (:id)"), {"id": job.id})
    await asyncio.sleep(0.005)


worker.handle = handle
print("starting", flush=True)
asyncio.run(worker.main())
"""


def test_the_asyncio_worker_handles_each_job_once_and_stops_on_sigterm(recipe_env, tmp_path, make_engine):
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")
    with observer.begin() as conn:
        conn.execute(text("CREATE TABLE jobs (id serial PRIMARY KEY, payload text, done_at timestamptz)"))
        conn.execute(text("CREATE TABLE handled (job_id int PRIMARY KEY)"))
        conn.execute(text("INSERT INTO jobs (payload) SELECT 'job ' || i FROM generate_series(1, 2000) i"))
    (tmp_path / "worker.py").write_text(recipe("worker.py"))
    process = subprocess.Popen(
        [sys.executable, "-c", HANDLE],
        cwd=tmp_path,
        env=recipe_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: done(observer) >= 100, timeout=60)
        assert terminate_backends(observer) >= 1
        after_fault = done(observer)
        assert wait_until(lambda: done(observer) >= after_fault + 100, timeout=60), stop(process)
    finally:
        code, err = stop(process)
    assert code == 0, err
    with observer.connect() as conn:
        marked, handled = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM jobs WHERE done_at IS NOT NULL), (SELECT count(*) FROM handled)"
            )
        ).one()
    assert 0 < marked < 2000  # it stopped on SIGTERM, before the queue was empty
    assert marked == handled  # each claimed job was handled once, and each handled job claimed
    assert our_backends(observer, APP) == 0


def done(observer) -> int:
    with observer.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM jobs WHERE done_at IS NOT NULL")).scalar_one())
