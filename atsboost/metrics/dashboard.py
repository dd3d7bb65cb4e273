"""A Grafana dashboard over atsboost's metrics and the health report's, to import as a file.

    atsboost-db metrics dashboard > atsboost.json   # Grafana: Dashboards, New, Import

The same document ships as ``atsboost/metrics/grafana-dashboard.json`` (a test keeps
the two equal). Its panels read only metric names that atsboost exports: the
runtime's, through ``atsboost.metrics.prometheus`` (one row per pool, chosen by the
``pool`` variable), and the operator's report, through ``atsboost-db health --format
prometheus`` (a textfile collector or a cron job's push). The data source is chosen
at import (``DS_PROMETHEUS``), as the dashboards of postgres_exporter are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = Path(__file__).with_name("grafana-dashboard.json")
_DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
_POOL = 'pool=~"$pool"'


def _quantile(q: str, histogram: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket{{{_POOL}}}[5m])))"


def _mean(histogram: str) -> str:
    return f"sum(rate({histogram}_sum[1h])) / sum(rate({histogram}_count[1h]))"


@dataclass(frozen=True)
class Panel:
    """One time series (or stat) panel: its title, queries (expression, legend) and unit."""

    title: str
    queries: tuple[tuple[str, str], ...]
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Pool",
        (
            Panel(
                "Connections",
                (
                    (f"sum by (state) (atsboost_pool_connections{{{_POOL}}})", "{{state}}"),
                    (f"sum(atsboost_pool_max_connections{{{_POOL}}})", "size + overflow"),
                ),
                description="Saturation shows as checked-out connections reaching size + overflow.",
            ),
            Panel(
                "Checkout wait",
                (
                    (_quantile("0.5", "atsboost_pool_wait_seconds"), "p50"),
                    (_quantile("0.99", "atsboost_pool_wait_seconds"), "p99"),
                    (f"sum(atsboost_pool_waiting{{{_POOL}}})", "waiting now"),
                ),
                unit="s",
            ),
            Panel(
                "Pool timeouts and leaks",
                (
                    (f"sum(rate(atsboost_pool_timeouts_total{{{_POOL}}}[5m]))", "timeouts/s"),
                    (f"sum(rate(atsboost_pool_leaks_total{{{_POOL}}}[5m]))", "leaks/s"),
                ),
                unit="ops",
            ),
            Panel(
                "Connection churn",
                (
                    (f"sum(rate(atsboost_pool_connections_opened_total{{{_POOL}}}[5m]))", "opened"),
                    (
                        f"sum by (reason) (rate(atsboost_pool_connections_closed_total{{{_POOL}}}[5m]))",
                        "closed: {{reason}}",
                    ),
                    (f"sum(rate(atsboost_pool_validations_total{{{_POOL}}}[5m]))", "validated"),
                ),
                unit="ops",
            ),
        ),
    ),
    (
        "Transactions",
        (
            Panel(
                "Transactions by outcome",
                ((f"sum by (outcome) (rate(atsboost_transactions_total{{{_POOL}}}[5m]))", "{{outcome}}"),),
                unit="ops",
                description="Any outcome_unknown deserves a look: a COMMIT whose connection broke.",
            ),
            Panel(
                "Retries by SQLSTATE",
                (
                    (
                        f"sum by (sqlstate) (rate(atsboost_transaction_retries_total{{{_POOL}}}[5m]))",
                        "{{sqlstate}}",
                    ),
                ),
                unit="ops",
                description="A failover shows as 57P01 and class 08 together.",
            ),
        ),
    ),
    (
        "Health monitor and migrations",
        (
            Panel(
                "Monitor state",
                (
                    (f"max by (status) (atsboost_health_status{{{_POOL}}})", "{{status}}"),
                    (f"max(atsboost_health_consecutive_failures{{{_POOL}}})", "failed checks in a row"),
                ),
            ),
            Panel(
                "Migrations",
                (
                    ("sum(increase(atsboost_migrations_applied_total[1h]))", "applied in the hour"),
                    (_mean("atsboost_migration_duration_seconds"), "mean time per revision"),
                    (_mean("atsboost_migration_lock_wait_seconds"), "mean wait for the lock"),
                ),
            ),
        ),
    ),
    (
        "Health report (atsboost-db health --format prometheus)",
        (
            Panel(
                "Checks",
                (
                    ("max by (check) (atsboost_health_check_status)", "{{check}}"),
                    ("max(pg_up)", "database answered"),
                ),
                description="Each check: 0 OK, 1 WARNING, 2 CRITICAL.",
            ),
            Panel(
                "Server connections",
                (
                    ("sum by (state) (atsboost_health_connections)", "{{state}}"),
                    ("max(atsboost_health_connections_usable)", "usable slots"),
                    ("max(atsboost_health_blocked_sessions)", "blocked by a lock"),
                ),
            ),
            Panel(
                "Replication lag",
                (
                    ("max by (instance) (pg_replication_lag_seconds)", "this standby: {{instance}}"),
                    (
                        "max by (application_name) (atsboost_health_standby_replay_lag_seconds)",
                        "standby {{application_name}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Long and idle transactions",
                (
                    ("max(atsboost_health_longest_query_seconds)", "longest query"),
                    ("max(atsboost_health_oldest_idle_in_transaction_seconds)", "oldest idle in transaction"),
                ),
                unit="s",
            ),
        ),
    ),
)


def dashboard() -> dict[str, Any]:
    """Return the dashboard as Grafana's JSON model, ready to import."""
    panels: list[dict[str, Any]] = []
    y = 0
    for title, row in ROWS:
        panels.append({"type": "row", "title": title, "collapsed": False, "gridPos": _grid(0, y, 24, 1)})
        y += 1
        for index, panel in enumerate(row):
            panels.append(
                _panel(panel, len(panels) + 1, _grid(12 * (index % 2), y + 8 * (index // 2), 12, 8))
            )
        y += 8 * ((len(row) + 1) // 2)
    return {
        "__inputs": [
            {"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus"}
        ],
        "title": "atsboost",
        "uid": "atsboost",
        "tags": ["atsboost", "postgresql"],
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [_pool_variable()]},
        "panels": panels,
    }


def _panel(panel: Panel, number: int, grid: dict[str, int]) -> dict[str, Any]:
    targets = [
        {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": _DATASOURCE}
        for i, (expr, legend) in enumerate(panel.queries)
    ]
    return {
        "id": number,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": _DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": targets,
    }


def _pool_variable() -> dict[str, Any]:
    query = "label_values(atsboost_pool_connections, pool)"
    return {
        "name": "pool",
        "type": "query",
        "datasource": _DATASOURCE,
        "query": {"query": query, "refId": "pool"},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
    }


def _grid(x: int, y: int, w: int, h: int) -> dict[str, int]:
    return {"x": x, "y": y, "w": w, "h": h}


def expressions() -> list[str]:
    """Return every PromQL expression the dashboard runs (its panels' and its variable's)."""
    document = dashboard()
    found = [target["expr"] for panel in document["panels"] for target in panel.get("targets", [])]
    return [*found, *(variable["definition"] for variable in document["templating"]["list"])]


def rendered() -> str:
    """Return the dashboard as the JSON text the package ships."""
    return json.dumps(dashboard(), indent=2) + "\n"
