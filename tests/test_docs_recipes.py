"""The app-server recipes of docs/runtime.md, run as written there, as real server processes.

They run as a team runs them: atsboost installed from its wheel, with the extras the
recipes name, in a virtualenv of their own, under uvicorn and gunicorn.
"""

import asyncio
import collections
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import recipe, wait_until
from tests.runtime.test_shutdown import backends_exited
from tests.wheel import install_wheel

pytestmark = pytest.mark.wheel

APP = "atsboost-recipe"
PACKAGES = ("uvicorn", "gunicorn")


@pytest.fixture(scope="session")  # once per worker, though other modules' tests come between
def wheel_bin(tmp_path_factory):
    """A new virtualenv with atsboost's wheel, the extras the recipes name, uvicorn and gunicorn."""
    folder = tmp_path_factory.mktemp("recipes-wheel")
    return install_wheel(folder, extras="fastapi,flask,prometheus", packages=PACKAGES)


@pytest.fixture
def recipe_env(environ, tmp_path, wheel_bin):
    """The process environment of a recipe's server: the test's database, the wheel's virtualenv first."""
    return {
        **environ,
        "DATABASE_APPLICATION_NAME": APP,
        "PATH": f"{wheel_bin}:/usr/bin:/bin",
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
                    " WHERE application_name = :a AND datname = current_database()"
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
    """Start the recipe's server as docs/runtime.md says to run it; its output goes to a file.

    A pipe nobody reads would fill (the servers log every request) and stop the server.
    """
    (tmp_path / f"{module}.py").write_text(recipe(f"{module}.py"))
    if module == "app":  # Flask, under gunicorn with its recipe's configuration and 4 workers
        (tmp_path / "gunicorn.conf.py").write_text(recipe("gunicorn.conf.py"))
        (tmp_path / "metrics").mkdir()
        env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
        command = ["gunicorn", "-c", "gunicorn.conf.py", "-w", "4", "-b", f"127.0.0.1:{port}", "app:app"]
    else:
        command = ["uvicorn", f"{module}:app", "--port", str(port)]
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


@pytest.mark.slow
@pytest.mark.parametrize("module", ["main", "main_sync", "app"])
def test_an_app_loses_no_commit_while_its_backends_are_terminated(
    module, recipe_env, tmp_path, unused_tcp_port, make_engine
):
    observer = make_engine(DATABASE_APPLICATION_NAME="atsboost-observer")
    base = f"http://127.0.0.1:{unused_tcp_port}"
    server, log = serve(module, tmp_path, recipe_env, unused_tcp_port)
    try:
        assert wait_until(lambda: answers(base), timeout=60), "the server did not start"
        assert ready(base) == 200  # the readiness route: the database answers
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
        committed = committed_in_scrape(base) if module == "app" else None
    finally:
        code, err = stopped(server, log)
    if committed is not None:  # every worker's transactions, added up by the multi-process scrape
        assert committed == 1000, committed  # the 1,000 PUTs, each one run_transaction, over 4 workers
    assert (first.status_code, second.status_code) == (201, 500), err
    with observer.connect() as conn:
        deferred = conn.execute(text("SELECT code FROM subscription_plans WHERE code LIKE 'deferred-%'"))
        assert list(deferred.scalars()) == ["deferred-a"]  # the 500's row was not saved
    assert len(terminated) == 2 and all(n >= 1 for n in terminated)  # the faults really happened
    answered = {f"load-{i:03d}" for i, status in statuses.items() if status is not None and status < 300}
    assert stored_codes(observer) == answered, collections.Counter(statuses.values())  # 2xx rows, no other
    assert list(statuses.values()) == [200] * 1000, err
    if module == "app":  # gunicorn stopped its workers gracefully, each running worker_exit's shutdown
        assert "Shutting down: Master" in err and code == 0, err
    else:  # uvicorn ran the lifespan's shutdown, with atsboost's lines shown, then ends with its signal
        assert "INFO atsboost.runtime.shutdown: shutdown: closed every connection" in err, err
        assert "Application shutdown complete." in err and code in (0, -signal.SIGTERM), err
    assert backends_exited(observer, APP)


def committed_in_scrape(base: str) -> float:
    """Scrape /metrics: the committed run_transaction calls of every worker, added up."""
    from prometheus_client.parser import text_string_to_metric_families

    body = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "atsboost_transactions_total" and sample.labels.get("outcome") == "committed"
    )


def answers(base: str) -> bool:
    try:
        return bool(httpx.get(f"{base}/healthz", timeout=2).json() == {"status": "alive"})
    except httpx.TransportError:
        return False


def ready(base: str) -> int | None:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code
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
        ["python", "-c", HANDLE],
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
    assert backends_exited(observer, APP)


def done(observer) -> int:
    with observer.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM jobs WHERE done_at IS NOT NULL")).scalar_one())
