"""The Prometheus endpoint, scraped over HTTP during a server restart, read with prometheus_client."""

import threading
import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from atsboost.metrics import prometheus
from atsboost.runtime.pool.metrics import stats_of
from atsboost.runtime.retry import run_transaction
from tests.conftest import REPO


@pytest.fixture
def endpoint(unused_tcp_port):
    """A real HTTP endpoint serving a registry that holds atsboost's collector."""
    registry = CollectorRegistry()
    prometheus.register(registry)
    prometheus.register(registry)  # a second call changes nothing
    server, thread = start_http_server(unused_tcp_port, addr="127.0.0.1", registry=registry)
    yield f"http://127.0.0.1:{unused_tcp_port}/metrics"
    server.shutdown()
    server.server_close()
    thread.join(5)


def scrape(url, pool):
    """Every sample of ``pool`` (and the process-wide ones) as {(name, labels without pool): value}."""
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            labels = dict(sample.labels)
            if labels.pop("pool", pool) == pool:
                found[(sample.name, tuple(sorted(labels.items())))] = sample.value
    return found


def total(samples, name, **labels):
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def test_a_scrape_during_a_restart_shows_retries_invalidations_and_waits(
    endpoint, make_server_engine, controlled_server
):
    engine = make_server_engine(DATABASE_POOL_SIZE="4")
    stats = stats_of(engine.pool)
    assert stats is not None
    before = scrape(endpoint, stats.name)
    errors: list[BaseException] = []

    def work():
        for _ in range(25):
            try:
                # read_only: a COMMIT the restart cuts off loses nothing, so the count stays exact
                run_transaction(
                    lambda s: s.execute(text("SELECT 1")).scalar_one(), engine=engine, read_only=True
                )
            except Exception as exc:  # each one fails the test
                errors.append(exc)
            time.sleep(0.02)

    held = [engine.connect() for _ in range(4)]  # every connection out: the threads' first checkouts wait
    threads = [threading.Thread(target=work) for _ in range(8)]  # 8 threads on 4 connections
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    for conn in held:
        conn.close()
    time.sleep(0.1)
    controlled_server.restart()
    for thread in threads:
        thread.join()
    after = scrape(endpoint, stats.name)
    assert errors == []

    def moved(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("atsboost_transactions_total", outcome="committed") == 200
    assert moved("atsboost_transactions_total", outcome="failed") == 0
    retried = {ls: v for (n, ls), v in after.items() if n == "atsboost_transaction_retries_total"}
    assert sum(retried.values()) >= 1 and all(dict(ls)["sqlstate"] for ls in retried)
    dead = moved("atsboost_pool_connections_closed_total", reason="invalidated")
    assert dead + moved("atsboost_pool_validations_total") >= 1
    assert moved("atsboost_pool_connections_opened_total") >= 1
    assert moved("atsboost_pool_wait_seconds_count") >= 200
    slow = moved("atsboost_pool_wait_seconds_count") - moved("atsboost_pool_wait_seconds_bucket", le="0.001")
    assert slow >= 4  # the first checkouts waited for the held connections
    assert total(after, "atsboost_pool_max_connections") == 4
    assert total(after, "atsboost_pool_connections", state="checked_out") == 0


def test_every_exported_metric_is_in_the_documented_table():
    from atsboost.metrics.prometheus import METRICS

    documented = (REPO / "docs" / "observability.md").read_text()
    for name, (_, labels) in METRICS.items():
        assert f"`{name}`" in documented or f"`{name}_total`" in documented, name
        assert all(f"`{label}`" in documented for label in labels), name
