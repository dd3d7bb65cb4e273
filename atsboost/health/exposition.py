"""The health report as Prometheus metrics: ``atsboost-db health --format prometheus``.

For the node exporter's textfile collector or a cron job: each figure of the report
as a gauge, written by prometheus_client in its text format. A figure that
postgres_exporter also exports keeps its name there (``pg_up``,
``pg_database_size_bytes``, ``pg_settings_max_connections``), so dashboards and
alerts work with either; the rest are ``atsboost_health_*``. A section the report
could not read is left out, never written as zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from atsboost.health.checks import EXIT_CODES, Check, overall
from atsboost.health.model import HealthReport
from atsboost.health.records import Replication, Role

try:  # the optional extra; say how to install it
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as missing:
    raise ImportError(
        f"the Prometheus format needs prometheus_client ({missing}); "
        "install it with: pip install 'atsboost[prometheus]'"
    ) from missing


def exposition(report: HealthReport, checks: list[Check]) -> str:
    """Return the report's figures in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ReportCollector(report, checks))
    return generate_latest(registry).decode()


class _ReportCollector(Collector):
    def __init__(self, report: HealthReport, checks: list[Check]) -> None:
        self.report, self.checks = report, checks

    def collect(self) -> Iterator[Metric]:
        report = self.report
        yield _single("pg_up", "1 if the database answered.", 1 if report.connection.reachable else 0)
        yield from _database(report)
        yield from _connections(report)
        yield from _activity(report)
        yield from _replication(report.replication)
        yield from _role(report.role)
        yield from _verdicts(self.checks)
        yield _single("atsboost_health_report_seconds", "Time the report took.", report.seconds)


def _single(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _database(report: HealthReport) -> Iterator[Metric]:
    if report.database_bytes is not None:
        size = GaugeMetricFamily(
            "pg_database_size_bytes", "Disk space the database uses.", labels=["datname"]
        )
        size.add_metric([urlsplit(report.database).path.lstrip("/")], report.database_bytes)
        yield size
    if report.connection.pending_revisions is not None:
        pending = report.connection.pending_revisions
        yield _single("atsboost_health_pending_revisions", "Migrations not applied yet.", pending)
    if report.cache_hit_ratio is not None:
        yield _single(
            "atsboost_health_cache_hit_ratio", "Share of reads served from memory.", report.cache_hit_ratio
        )
    if report.xid_age is not None:
        yield _single(
            "atsboost_health_xid_age", "Transactions since the database was frozen.", report.xid_age
        )
    invalid = len(report.invalid_indexes)
    yield _single("atsboost_health_invalid_indexes", "Indexes left invalid (a failed build).", invalid)
    used = GaugeMetricFamily(
        "atsboost_health_sequence_used_ratio", "Share of its range a sequence has used.", labels=["sequence"]
    )
    for sequence in report.sequences:
        used.add_metric([sequence["sequence"]], sequence["used"])
    yield used


def _connections(report: HealthReport) -> Iterator[Metric]:
    usage = report.usage
    if usage is None:
        return
    yield _single("pg_settings_max_connections", "The server's max_connections.", usage.max_connections)
    yield _single("atsboost_health_connections_usable", "Slots ordinary roles can use.", usage.usable)
    by_state = GaugeMetricFamily(
        "atsboost_health_connections", "Server connections by state.", labels=["state"]
    )
    for state, count in sorted(usage.by_state.items()):
        by_state.add_metric([state], count)
    yield by_state
    if usage.oldest_idle_in_transaction_seconds is not None:
        oldest = usage.oldest_idle_in_transaction_seconds
        yield _single(
            "atsboost_health_oldest_idle_in_transaction_seconds", "Longest idle transaction.", oldest
        )


def _activity(report: HealthReport) -> Iterator[Metric]:
    longest = max((q["seconds"] for q in report.long_queries), default=0)
    yield _single(
        "atsboost_health_long_queries", "Queries running past the threshold.", len(report.long_queries)
    )
    yield _single("atsboost_health_longest_query_seconds", "The longest of them (0: none).", longest)
    blocked = len({row["blocked_pid"] for row in report.blocking})
    yield _single("atsboost_health_blocked_sessions", "Sessions waiting for another's lock.", blocked)


def _replication(replication: Replication | None) -> Iterator[Metric]:
    """Replication, named as postgres_exporter names it where it has a name."""
    if replication is None:
        return
    standby = replication["role"] == "standby"
    yield _single("pg_replication_is_replica", "1 on a standby, 0 on a primary.", 1 if standby else 0)
    if standby:
        replay_lag = replication["replay_lag_seconds"]
        if replay_lag is not None:  # the schema allows none: no sample rather than a made-up 0
            yield _single("pg_replication_lag_seconds", "Replay lag of this standby.", replay_lag)
        return
    labels = ["application_name", "client_addr"]
    behind = GaugeMetricFamily(
        "pg_stat_replication_pg_wal_lsn_diff", "WAL a standby has yet to replay, in bytes.", labels=labels
    )
    lag = GaugeMetricFamily(
        "atsboost_health_standby_replay_lag_seconds", "A standby's replay lag.", labels=labels
    )
    for row in replication["standbys"]:
        key = [row["application_name"] or "", row["client_addr"] or "local"]
        behind.add_metric(key, row["replay_behind_bytes"] or 0)
        lag.add_metric(key, row["replay_lag_seconds"] or 0.0)
    retained = GaugeMetricFamily(
        "pg_replication_slots_pg_wal_lsn_diff", "WAL a slot keeps, in bytes.", labels=["slot_name"]
    )
    active = GaugeMetricFamily(
        "pg_replication_slots_active", "1 if a consumer reads the slot.", labels=["slot_name"]
    )
    for slot in replication["slots"]:
        retained.add_metric([slot["slot_name"]], slot["retained_bytes"] or 0)
        active.add_metric([slot["slot_name"]], 1 if slot["active"] else 0)
    yield from (behind, lag, retained, active)


def _role(role: Role | None) -> Iterator[Metric]:
    """Yield the connected role's attributes (1: it has it), the tables it owns, the privileges it lacks."""
    if role is None:
        return
    attribute = GaugeMetricFamily(
        "atsboost_health_role_attribute",
        "1 if the connected role has the attribute (superuser, createrole, bypassrls, ...).",
        labels=["role", "attribute"],
    )
    for name in ("superuser", "createrole", "bypassrls", "createdb", "replication"):
        attribute.add_metric([role["name"], name], 1 if role[name] else 0)
    yield attribute
    owned = len(role["owns"])
    yield _single("atsboost_health_role_owned_tables", "Tables the connected role owns and uses.", owned)
    missing = GaugeMetricFamily(
        "atsboost_health_role_missing_privileges",
        "Privileges the connected role lacks on an object it uses.",
        labels=["object"],
    )
    for gap in role["missing"]:
        missing.add_metric([gap["object"]], len(gap["missing"]))
    yield missing


def _verdicts(checks: list[Check]) -> Iterator[Metric]:
    status = GaugeMetricFamily(
        "atsboost_health_check_status", "Each check: 0 OK, 1 WARNING, 2 CRITICAL.", labels=["check"]
    )
    for check in checks:
        status.add_metric([check.name], EXIT_CODES[check.status])
    yield status
    yield _single(
        "atsboost_health_status", "The worst check: 0 OK, 1 WARNING, 2 CRITICAL.", EXIT_CODES[overall(checks)]
    )
