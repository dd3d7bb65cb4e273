"""Thresholds over the health report: OK, WARNING or CRITICAL, for monitoring systems and deploy gates.

Defaults follow check_postgres and PgHero; ``atsboost-db health --check`` prints one
line and exits 0 (OK), 1 (WARNING) or 2 (CRITICAL), as Nagios-style monitors expect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atsboost.health.model import HealthReport
from atsboost.health.records import Role

OK, WARNING, CRITICAL = "ok", "warning", "critical"
EXIT_CODES = {OK: 0, WARNING: 1, CRITICAL: 2}


@dataclass(frozen=True)
class Thresholds:
    """Where each check turns WARNING and CRITICAL."""

    connections_warning: float = 0.80
    connections_critical: float = 0.95
    long_query_warning: float = 60.0
    long_query_critical: float = 300.0
    idle_in_transaction_warning: float = 60.0
    idle_in_transaction_critical: float = 300.0
    cache_hit_warning: float = 0.99
    cache_hit_critical: float = 0.95
    xid_age_warning: int = 1_300_000_000
    xid_age_critical: int = 1_400_000_000
    sequence_warning: float = 0.85
    sequence_critical: float = 0.95
    replication_lag_warning: float = 30.0
    replication_lag_critical: float = 300.0
    slot_retained_critical: int = 10 * 2**30  # an inactive slot is a WARNING; keeping this much is CRITICAL
    superuser: str = (
        WARNING  # an application connected as a superuser: CRITICAL in production (for_environment)
    )

    @classmethod
    def for_environment(cls, *, production: bool, **given: Any) -> Thresholds:
        """Return the thresholds of an environment: production's superuser connection is CRITICAL."""
        return cls(superuser=CRITICAL if production else WARNING, **given)


@dataclass(frozen=True)
class Check:
    """One check's verdict and what it saw."""

    name: str
    status: str
    message: str


def evaluate(report: HealthReport, limits: Thresholds) -> list[Check]:
    """Judge the report against the thresholds; an unreachable database is CRITICAL."""
    connection = report.connection
    if not connection.reachable:
        return [Check("connection", CRITICAL, f"unreachable: {connection.error}"), *_hosts(report)]
    return [
        *_hosts(report),
        *_revisions(report),
        *_connections(report, limits),
        *_queries(report, limits),
        *_storage(report, limits),
        *_replication(report, limits),
        *role_checks(report.role, limits),
    ]


def _revisions(report: HealthReport) -> list[Check]:
    """Judge the connection, and revisions pending or edited since they were applied."""
    connection = report.connection
    checks = [Check("connection", OK, f"reachable in {connection.latency_ms} ms")]
    if connection.pending_revisions:
        checks.append(Check("migrations", WARNING, f"{connection.pending_revisions} revision(s) pending"))
    if connection.edited_revisions:
        edited = "; ".join(connection.edited_revisions)
        checks.append(Check("revision checksums", WARNING, f"{edited}; see `atsboost-db migrate validate`"))
    return checks


def _connections(report: HealthReport, limits: Thresholds) -> list[Check]:
    """Judge connections against the usable slots, and the oldest idle transaction."""
    usage = report.usage
    if usage is None:
        return []
    share = usage.total / usage.usable if usage.usable else 1.0
    oldest = usage.oldest_idle_in_transaction_seconds or 0.0
    return [
        _rising(
            "connections",
            share,
            limits.connections_warning,
            limits.connections_critical,
            f"{usage.total} of {usage.usable} usable ({share:.0%})",
        ),
        _rising(
            "idle in transaction",
            oldest,
            limits.idle_in_transaction_warning,
            limits.idle_in_transaction_critical,
            f"oldest for {oldest:.0f} s",
        ),
    ]


def _queries(report: HealthReport, limits: Thresholds) -> list[Check]:
    """Judge queries running long, and sessions blocked behind a lock."""
    longest = max((q["seconds"] for q in report.long_queries), default=0.0)
    blocked = max((b["blocked_seconds"] or 0.0 for b in report.blocking), default=0.0)
    status = OK if not report.blocking else CRITICAL if blocked >= limits.long_query_critical else WARNING
    return [
        _rising(
            "long queries",
            longest,
            limits.long_query_warning,
            limits.long_query_critical,
            f"{len(report.long_queries)} over {limits.long_query_warning:g} s, longest {longest:.0f} s",
        ),
        Check("blocking", status, f"{len(report.blocking)} blocked session(s), longest {blocked:.0f} s"),
    ]


def _storage(report: HealthReport, limits: Thresholds) -> list[Check]:
    """Judge invalid indexes, the cache hit ratio, xid wraparound and sequences running out."""
    invalid = ", ".join(i["index"] for i in report.invalid_indexes) or "none"
    checks = [Check("invalid indexes", WARNING if report.invalid_indexes else OK, invalid)]
    if report.cache_hit_ratio is not None:
        ratio = report.cache_hit_ratio
        low = (
            CRITICAL
            if ratio < limits.cache_hit_critical
            else WARNING
            if ratio < limits.cache_hit_warning
            else OK
        )
        checks.append(Check("cache hit ratio", low, f"{ratio:.2%}"))
    if report.xid_age is not None:
        age = report.xid_age
        checks.append(
            _rising(
                "wraparound",
                age,
                limits.xid_age_warning,
                limits.xid_age_critical,
                f"transaction ID age {age:,}",
            )
        )
    used = max((s["used"] for s in report.sequences), default=0.0)
    fullest = f"fullest sequence {used:.0%} used"
    checks.append(_rising("sequences", used, limits.sequence_warning, limits.sequence_critical, fullest))
    return checks


def _replication(report: HealthReport, limits: Thresholds) -> list[Check]:
    """Judge replication lag (either side) and slots that keep WAL while nothing reads them."""
    replication = report.replication
    if replication is None:
        return []
    found = []
    lags = [s["replay_lag_seconds"] or 0.0 for s in replication["standbys"]]
    if replication["replay_lag_seconds"] is not None:
        lags.append(replication["replay_lag_seconds"])
    if lags:
        worst = max(lags)
        warning, critical = limits.replication_lag_warning, limits.replication_lag_critical
        found.append(_rising("replication lag", worst, warning, critical, f"replay lag {worst:.1f} s"))
    for slot in replication["slots"]:
        if not slot["active"]:
            retained = slot["retained_bytes"] or 0
            message = (
                f"{slot['slot_name']} is inactive and keeps {retained / 2**20:,.0f} MiB of WAL; "
                "start its consumer, or drop it with pg_drop_replication_slot"
            )
            name = f"replication slot {slot['slot_name']}"
            found.append(_rising(name, retained, 0, limits.slot_retained_critical, message))
    return found


def role_checks(role: Role | None, limits: Thresholds) -> list[Check]:
    """Judge the connected role: a superuser, powers beyond rows, tables it owns, privileges it lacks."""
    if role is None:
        return []
    name = role["name"]
    if role["superuser"]:
        message = (
            f"{name} is a superuser: the application can drop any table and read every database; "
            "connect it as a role that changes rows only (`atsboost-db roles`, docs/deployment.md)"
        )
        return [Check("role", limits.superuser, message)]
    powers = [f"can {what}" for flag, what in _POWERS if role[flag]]  # type: ignore[literal-required]
    if role["owns"]:
        owned = ", ".join(role["owns"][:5]) + (", ..." if len(role["owns"]) > 5 else "")
        powers.append(
            f"owns {len(role['owns'])} table(s) it uses ({owned}), so it can DROP and ALTER them; keep this "
            "role for migrations (DATABASE_MIGRATION_URL) and connect the application as one that changes "
            "rows only (`atsboost-db roles`)"
        )
    checks = [
        Check("role", WARNING if powers else OK, f"{name}: " + ("; ".join(powers) or "changes rows only"))
    ]
    if role["missing"]:
        grants = "; ".join(
            f"{g['object']} lacks {', '.join(g['missing'])}: {g['grant']}" for g in role["missing"]
        )
        checks.append(Check("privileges", WARNING, f"{name}: {grants}"))
    return checks


_POWERS = (
    ("createrole", "create roles (CREATEROLE)"),
    ("bypassrls", "bypass row-level security (BYPASSRLS)"),
    ("createdb", "create databases (CREATEDB)"),
    ("replication", "stream the whole server (REPLICATION)"),
)


def _hosts(report: HealthReport) -> list[Check]:
    """Judge a host list: two primaries are a split brain (CRITICAL), a host not answering a WARNING."""
    if not report.hosts:
        return []
    primaries = [h for h in report.hosts if h["role"] == "primary"]
    down = [h["host"] for h in report.hosts if h["role"] == "unreachable"]
    if len(primaries) > 1:
        named = ", ".join(f"{h['host']} (timeline {h['timeline']})" for h in primaries)
        message = f"split brain: {len(primaries)} primaries: {named}; stop all but the newest timeline's"
        return [Check("hosts", CRITICAL, message)]
    if down:
        return [
            Check(
                "hosts",
                WARNING,
                f"{', '.join(down)} not answering; {len(report.hosts) - len(down)} of {len(report.hosts)} do",
            )
        ]
    leader = f"primary {primaries[0]['host']}" if primaries else "no primary"
    return [Check("hosts", OK, f"{len(report.hosts)} hosts answer, {leader}")]


def overall(checks: list[Check]) -> str:
    """Return the worst status among the checks."""
    order = [OK, WARNING, CRITICAL]
    return max((c.status for c in checks), key=order.index, default=OK)


def summary(checks: list[Check]) -> str:
    """One line for a monitor: the overall status, then every check that is not OK."""
    status = overall(checks)
    problems = [f"{c.name}: {c.message}" for c in checks if c.status != OK]
    fine = sum(1 for c in checks if c.status == OK)
    details = "; ".join(problems) + f"; {fine} ok" if problems else f"{fine} checks ok"
    return f"DATABASE {status.upper()} - {details}"


def _rising(name: str, value: float, warning: float, critical: float, message: str) -> Check:
    """Judge a value that is worse the higher it is."""
    status = CRITICAL if value >= critical else WARNING if value >= warning else OK
    return Check(name, status, message)
