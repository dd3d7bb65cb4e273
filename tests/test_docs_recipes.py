"""The app-server recipes of docs/runtime.md, run as written there, as real server processes."""

import asyncio
import os
import signal
import subprocess
import sys

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


async def put_plans(base: str, count: int, concurrency: int, on_progress) -> list[int]:
    """PUT ``count`` plans from ``concurrency`` clients; ``on_progress(done)`` after each answer."""
    codes: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        codes.put_nowait(i)
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def client_loop() -> None:
            while not codes.empty():
                i = codes.get_nowait()
                body = {"name": f"Load {i}", "price_cents": i}
                statuses.append((await client.put(f"/plans/load-{i:03d}", json=body)).status_code)
                await on_progress(len(statuses))

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return statuses


def test_the_fastapi_app_serves_500_requests_while_its_backends_are_terminated(
    recipe_env, tmp_path, unused_tcp_port, make_engine
):
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")
    (tmp_path / "main.py").write_text(recipe("main.py"))
    base = f"http://127.0.0.1:{unused_tcp_port}"
    command = [sys.executable, "-m", "uvicorn", "main:app", "--port", str(unused_tcp_port)]
    command += ["--timeout-graceful-shutdown", "20"]
    server = subprocess.Popen(
        command, cwd=tmp_path, env=recipe_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_until(lambda: ready(base) == 200, timeout=60), server.stderr
        terminated: list[int] = []

        async def kill_once(done: int) -> None:
            if done == 150 and not terminated:
                terminated.append(await asyncio.to_thread(terminate_backends, observer))

        statuses = asyncio.run(put_plans(base, 500, 50, kill_once))
        listed = httpx.get(f"{base}/plans", timeout=30).json()
    finally:
        code, err = stop(server)
    assert terminated and terminated[0] >= 1  # the fault really happened
    assert statuses == [200] * 500, err
    with observer.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM subscription_plans WHERE code LIKE 'load-%'"))
        assert stored.scalar_one() == 500
    assert sum(plan["code"].startswith("load-") for plan in listed) == 500
    # uvicorn ran the lifespan's shutdown, then ends with the signal it was sent.
    assert "Application shutdown complete." in err and code in (0, -signal.SIGTERM), err
    assert our_backends(observer, APP) == 0


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
