"""prometheus_client's multi-process mode under a real gunicorn, from the recipe in docs/observability.md."""

import os
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import recipe, wait_until


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, summed over the labels other than the ones kept, by name and labels."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pool"))
            key = (sample.name, labels)
            samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def committed(base: str) -> float:
    return scrape(base).get(("atsboost_transactions_total", (("outcome", "committed"),)), 0.0)


def get_pids(base: str, count: int) -> list[int]:
    """Send ``count`` requests from 6 clients; return the pid of the worker that answered each."""

    def one(_: int) -> int:
        answer = httpx.get(f"{base}/work", timeout=30)
        answer.raise_for_status()
        return int(answer.text)

    with ThreadPoolExecutor(6) as pool:
        return list(pool.map(one, range(count)))


def answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/metrics", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_every_worker_counts_and_a_killed_worker_counts_stay(environ, tmp_path, unused_tcp_port):
    (tmp_path / "wsgi.py").write_text(recipe("wsgi.py", "observability.md"))
    (tmp_path / "gunicorn.conf.py").write_text(recipe("gunicorn.conf.py", "observability.md"))
    (tmp_path / "metrics").mkdir()
    env = {
        **environ,
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    base = f"http://127.0.0.1:{unused_tcp_port}"
    own_socket = ["--control-socket", str(tmp_path / "gunicorn.ctl")]  # not $HOME's, shared by every run
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "gunicorn.conf.py",
        "-b",
        base[7:],
        *own_socket,
        "wsgi:app",
    ]
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: answers(base), timeout=30), "gunicorn did not start"
        pids = get_pids(base, 60)
        assert len(Counter(pids)) == 2  # both workers served
        assert committed(base) == 60
        figures = scrape(base)
        assert figures[("atsboost_pool_wait_seconds_count", ())] >= 60
        assert figures[("atsboost_migrations_applied_total", ())] == 2  # once, in the master
        # Each worker keeps at least one idle connection; the gauges follow within a second.
        idle = ("atsboost_pool_connections", (("state", "idle"),))
        assert wait_until(lambda: scrape(base).get(idle, 0) >= 2, timeout=5)
        # The live gauges are the two workers' sums: the preloaded master's pool is not one of them.
        assert scrape(base)[("atsboost_pool_max_connections", ())] == 2 * 5  # testing: pool of 5
        assert scrape(base)[idle] <= 2 * 5

        os.kill(pids[0], signal.SIGKILL)
        sent, answered = 60, set(pids)
        while answered <= set(pids) and sent < 600:  # until gunicorn's new worker answers
            answered |= set(get_pids(base, 6))
            sent += 6
        assert answered - set(pids), "gunicorn started no new worker"
        assert committed(base) == sent  # the killed worker's share stays in the totals
        # A worker killed before it sized its file leaves it empty, for good: the scrape still answers.
        (tmp_path / "metrics" / "counter_4000000.db").touch()
        assert committed(base) == sent
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert "Traceback" not in err, err
