"""The alert rules of docs/observability.md, checked and unit-tested by Prometheus' own promtool."""

import shutil
import subprocess
import textwrap

import pytest

from tests.conftest import REPO

POOL = "shop@db.example.com:5432"
SATURATED = "Look for slow queries or leaks (atsboost-db health), or raise DATABASE_POOL_SIZE."
FENCED = "Stop the old primary before it rejoins as a standby: see atsboost-db health."
STORM = "By SQLSTATE: 40001/40P01 contention, 57P01 and class 08 failovers or restarts."

# promtool's rule unit tests: series as the collector exports them, and the alerts they must raise.
UNIT_TESTS = textwrap.dedent(
    f"""
    rule_files: [rules.yml]
    evaluation_interval: 1m
    tests:
      - interval: 1m
        input_series:
          - series: 'atsboost_pool_timeouts_total{{pool="{POOL}"}}'
            values: '0+1x20'
          - series: 'atsboost_transactions_total{{pool="{POOL}",outcome="committed"}}'
            values: '0+100x20'
          - series: 'atsboost_transaction_retries_total{{pool="{POOL}",sqlstate="40001"}}'
            values: '0+20x20'
          - series: 'atsboost_health_status{{pool="{POOL}",status="down"}}'
            values: '0 0 1 1 1 1'
          - series: 'atsboost_health_status{{pool="{POOL}",status="healthy"}}'
            values: '1 1 0 0 0 0'
          - series: 'atsboost_migration_lock_wait_seconds_sum'
            values: '0+10x20'
          - series: 'atsboost_pool_primaries_fenced_total{{pool="{POOL}"}}'
            values: '0 0 0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1'
        alert_rule_test:
          - eval_time: 1m
            alertname: AtsboostDatabaseDown
            exp_alerts: []
          - eval_time: 4m
            alertname: AtsboostDatabaseDown
            exp_alerts:
              - exp_labels: {{severity: critical, pool: "{POOL}", status: down}}
                exp_annotations:
                  summary: "{POOL}: the health monitor cannot reach the database"
          - eval_time: 12m
            alertname: AtsboostPoolSaturated
            exp_alerts:
              - exp_labels: {{severity: warning, pool: "{POOL}"}}
                exp_annotations:
                  summary: "{POOL}: checkouts wait for connections (p99 over 0.5 s, or timeouts)"
                  description: "{SATURATED}"
          - eval_time: 18m
            alertname: AtsboostRetryStorm
            exp_alerts:
              - exp_labels: {{severity: warning, pool: "{POOL}"}}
                exp_annotations:
                  summary: "{POOL}: over 10 % of transactions are retried"
                  description: "{STORM}"
          - eval_time: 16m
            alertname: AtsboostMigrationLockWait
            exp_alerts:
              - exp_labels: {{severity: warning}}
                exp_annotations:
                  summary: "a migration waited over a minute for the migration lock"
                  description: "Another migrator holds it: see `atsboost-db migrate status` and pg_locks."
          - eval_time: 4m
            alertname: AtsboostSplitBrain
            exp_alerts: []
          - eval_time: 6m
            alertname: AtsboostSplitBrain
            exp_alerts:
              - exp_labels: {{severity: critical, pool: "{POOL}"}}
                exp_annotations:
                  summary: "{POOL}: a stale primary was fenced (split brain)"
                  description: "{FENCED}"
          - eval_time: 25m
            alertname: AtsboostSplitBrain
            exp_alerts: []
    """
)


def documented_rules() -> str:
    """The YAML block of docs/observability.md's Alerts section, as a user would copy it."""
    alerts = (REPO / "docs" / "observability.md").read_text().split("## Alerts", 1)[1]
    return alerts.split("```yaml\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian: the prometheus package; .ci/run fetches it)")
    return found


def test_the_documented_rules_are_valid_and_fire_as_described(promtool, tmp_path):
    (tmp_path / "rules.yml").write_text(documented_rules())
    (tmp_path / "tests.yml").write_text(UNIT_TESTS)
    checked = subprocess.run(
        [promtool, "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0 and "5 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
