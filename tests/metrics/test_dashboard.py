"""The Grafana dashboard reads only what atsboost really exports: checked against live scrapes."""

import json
import re
import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from atsboost import migrations
from atsboost.config.settings import load_settings
from atsboost.metrics import prometheus
from atsboost.metrics.dashboard import FILE, ROWS, dashboard, expressions, rendered
from atsboost.runtime.database import Database
from atsboost.runtime.retry import run_transaction
from tests.replication import connect

NAME = re.compile(r"\b((?:atsboost|pg)_[a-z_]+)\b")
GROUPED = re.compile(r"\bby \(([^)]*)\)")
MATCHED = re.compile(r"([a-z_]+)=~?\"")
TARGET_LABELS = {"instance", "job", "le"}  # added by Prometheus when it scrapes, or the histogram's own


def test_the_shipped_file_is_the_dashboard_and_the_cli_prints_it(invoke):
    assert FILE.read_text() == rendered()
    printed = invoke("metrics", "dashboard")
    assert printed.returncode == 0 and json.loads(printed.stdout) == dashboard()


def test_every_panel_has_a_title_a_query_and_a_place_of_its_own():
    panels = [p for p in dashboard()["panels"] if p["type"] != "row"]
    assert len(panels) == sum(len(row) for _, row in ROWS)
    places = {(p["gridPos"]["x"], p["gridPos"]["y"]) for p in panels}
    assert len(places) == len(panels)
    assert all(p["title"] and p["targets"] and p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in panels)


@pytest.fixture
def scraped(replicated, invoke):
    """Every sample a runtime scrape and the health report's give, on a primary and its standby."""
    registry = CollectorRegistry()
    prometheus.register(registry, multiprocess=False)
    environ = {
        "ATSBOOST_ENV": "testing",
        "DATABASE_URL": replicated.primary.url.render_as_string(hide_password=False),
        "DATABASE_HEALTH_MONITOR": "true",
        "DATABASE_POOL_SIZE": "2",
        "DATABASE_POOL_TIMEOUT": "1",
    }
    settings = load_settings(environ)
    migrations.upgrade(settings)  # migrations' figures
    database = Database(settings, before_serving=())
    engine = database.startup()  # the monitor's figures
    try:
        cause_the_runtime_figures(engine)
        runtime = generate_latest(registry).decode()
    finally:
        database.shutdown()
    assert replicated.replayed()
    with connect(replicated.primary.url) as idle:  # a session idle in a transaction, as the report looks
        idle.execute("BEGIN")
        idle.execute("SELECT 1")
        reports = [
            invoke("health", "--format", "prometheus", env={**environ, "DATABASE_URL": url(server)})
            for server in (replicated.primary, replicated.standby)
        ]
    assert all(r.stdout.startswith("# HELP") for r in reports), reports
    samples: dict[str, set[str]] = {}
    for body in (runtime, *(r.stdout for r in reports)):
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def url(server):
    return server.url.render_as_string(hide_password=False)


def cause_the_runtime_figures(engine):
    """A commit, a retry (the first attempt's connection is killed), and a checkout that times out."""
    run_transaction(lambda s: s.execute(text("SELECT 1")), engine=engine)
    attempts = []

    def killed_once(session):
        attempts.append(1)
        if len(attempts) == 1:
            session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return session.execute(text("SELECT 1")).scalar_one()

    run_transaction(killed_once, engine=engine)
    held = [engine.connect(), engine.connect()]
    with pytest.raises(Exception, match="timed out|QueuePool limit"), engine.connect():
        pass
    for conn in held:
        conn.close()


def test_every_query_reads_metrics_and_labels_a_live_scrape_emits(scraped):
    for expression in expressions():
        names = NAME.findall(expression)
        assert names, expression
        for name in names:
            assert name in scraped, f"{name} (in {expression}) is not in a scrape"
        labels = {
            label for group in GROUPED.findall(expression) for label in group.replace(" ", "").split(",")
        }
        labels |= set(MATCHED.findall(expression))
        offered = set().union(*(scraped[name] for name in names)) | TARGET_LABELS
        assert labels <= offered, f"{expression} uses labels {labels - offered} no sample has"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (.ci/run fetches it)")
def test_every_query_is_valid_promql(tmp_path):
    recorded = []
    for number, expression in enumerate(expressions()):
        if expression.startswith("label_values("):  # Grafana's own function, not PromQL
            continue
        query = expression.replace("$pool", ".*")  # Grafana fills the variable in
        recorded.append({"record": f"atsboost:dashboard:{number}", "expr": query})
    rules = {"groups": [{"name": "dashboard", "rules": recorded}]}
    path = tmp_path / "rules.json"  # YAML is a superset of JSON: promtool reads it
    path.write_text(json.dumps(rules))
    checked = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
