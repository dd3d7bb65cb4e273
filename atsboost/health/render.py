"""The health report as aligned, readable sections: what someone reads during an incident."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atsboost.health.checks import Check, summary
from atsboost.health.model import HealthReport


def render(report: HealthReport, checks: list[Check], *, long_query_seconds: float) -> str:
    """Return the whole report as text, sections in the order an operator asks questions."""
    if not report.connection.reachable:
        hosts = _hosts(report)
        hosts = f"\n\n{hosts}" if hosts else ""
        return f"CONNECTION\n  unreachable: {report.connection.error}{hosts}\n\n{summary(checks)}"
    parts = [
        _connection(report),
        _role(report),
        _hosts(report),
        _size(report),
        _tables(report),
        _usage(report),
        _long_queries(report, long_query_seconds),
        _blocking(report),
        _indexes(report),
        _maintenance(report),
        _statements(report),
        _replication(report),
    ]
    if report.notes:
        parts.append("NOTES\n" + "\n".join(f"  {note}" for note in report.notes))
    parts.append(f"CHECKS ({report.seconds:.2f} s)\n  {summary(checks)}")
    return "\n\n".join(part for part in parts if part)


def _connection(r: HealthReport) -> str:
    c = r.connection
    ssl = "SSL" if c.ssl else "no SSL"
    lines = [
        f"CONNECTION       {r.database}",
        f"  server         PostgreSQL {c.server_version}, {ssl}, {c.latency_ms} ms",
    ]
    revision = ", ".join(c.revision) or "none"
    if c.pending_revisions is not None:
        revision += f" (head {', '.join(c.head)}, {c.pending_revisions} pending)"
    lines.append(f"  revision       {revision}")
    return "\n".join(lines)


def _role(r: HealthReport) -> str:
    """Return the role connected as: its attributes, what it owns, what it lacks (each with its GRANT)."""
    role = r.role
    if role is None:
        return ""
    flags = {
        "superuser": role["superuser"],
        "CREATEROLE": role["createrole"],
        "BYPASSRLS": role["bypassrls"],
        "CREATEDB": role["createdb"],
        "REPLICATION": role["replication"],
    }
    attributes = ", ".join(f"{flag} {'yes' if on else 'no'}" for flag, on in flags.items())
    lines = [f"ROLE             {role['name']}", f"  attributes     {attributes}"]
    lines.append(f"  owns           {', '.join(role['owns']) or 'no table it uses'}")
    lacks = [f"{g['object']}: {', '.join(g['missing'])} ({g['grant']})" for g in role["missing"]]
    lines.append("  lacks          " + (f"\n{'':<17}".join(lacks) or "nothing on the tables it uses"))
    return "\n".join(lines)


def _hosts(r: HealthReport) -> str:
    rows = [
        [h["host"], h["role"], str(h["timeline"]) if h["timeline"] is not None else "", h["error"] or ""]
        for h in r.hosts
    ]
    return "HOSTS\n" + _table(["host", "role", "timeline", ""], rows) if rows else ""


def _size(r: HealthReport) -> str:
    rows = [
        [t["table"], _bytes(t["table_bytes"]), _bytes(t["index_bytes"]), _bytes(t["total_bytes"])]
        for t in r.largest_tables
    ]
    head = f"SIZE             {_bytes(r.database_bytes)}"
    return head + ("\n" + _table(["largest tables", "table", "indexes", "total"], rows) if rows else "")


def _tables(r: HealthReport) -> str:
    rows = [
        [
            t["table"],
            f"{t['estimated_rows']:,}",
            t["seq_scans"],
            t["idx_scans"],
            f"{t['dead_tuples']:,}",
            _when(t["last_autovacuum"] or t["last_vacuum"]),
            _when(t["last_autoanalyze"] or t["last_analyze"]),
            "seq scans on a large table: missing index?" if t["seq_scan_heavy"] else "",
        ]
        for t in r.tables
    ]
    headers = ["table", "rows (est.)", "seq scans", "idx scans", "dead rows", "vacuumed", "analyzed", ""]
    return "TABLE STATISTICS\n" + (_table(headers, rows) if rows else "  no user tables")


def _usage(r: HealthReport) -> str:
    u = r.usage
    if u is None:
        return ""
    states = ", ".join(f"{state} {n}" for state, n in u.by_state.items())
    if u.oldest_idle_in_transaction_seconds is not None:
        states += f" (oldest idle in transaction: {u.oldest_idle_in_transaction_seconds:.0f} s)"
    apps = ", ".join(f"{app} {n}" for app, n in u.by_application.items())
    lines = [
        f"CONNECTIONS      {u.total} of {u.usable} usable "
        f"(max_connections {u.max_connections}, {u.reserved} reserved)",
        f"  by state       {states}",
        f"  by application {apps}",
    ]
    if u.pool_capacity is not None:
        lines.append(f"  this process   pool {u.pool_checked_out} of {u.pool_capacity} checked out")
    return "\n".join(lines)


def _long_queries(r: HealthReport, seconds: float) -> str:
    rows = [
        [
            q["pid"],
            q["user"],
            q["application"],
            f"{q['seconds']:.0f} s",
            q["state"],
            q["wait_event"] or "",
            _one_line(q["query"]),
        ]
        for q in r.long_queries
    ]
    body = (
        _table(["pid", "user", "application", "running", "state", "waiting on", "query"], rows)
        if rows
        else "  none"
    )
    return f"LONG-RUNNING QUERIES (over {seconds:g} s)\n{body}"


def _blocking(r: HealthReport) -> str:
    lines = [
        f"  pid {b['blocked_pid']} has waited {b['blocked_seconds'] or 0:.0f} s "
        f"({_one_line(b['blocked_query'])}) "
        f"for pid {b['blocking_pid']} ({b['blocking_state']}: {_one_line(b['blocking_query'])})"
        for b in r.blocking
    ]
    return "BLOCKING\n" + ("\n".join(lines) if lines else "  nobody is waiting for a lock")


def _indexes(r: HealthReport) -> str:
    lines = [
        f"  INVALID        {i['index']} on {i['table']}: "
        "a failed concurrent build; drop it and build it again"
        for i in r.invalid_indexes
    ]
    lines += [
        f"  unused         {i['index']} on {i['table']}, {_bytes(i['bytes'])}, never scanned"
        for i in r.unused_indexes
    ]
    lines += [
        f"  duplicate      {i['index']} on {i['table']} is covered by {i['covered_by']}"
        for i in r.duplicate_indexes
    ]
    return "INDEXES\n" + ("\n".join(lines) if lines else "  no invalid, unused or duplicate index")


def _maintenance(r: HealthReport) -> str:
    ratio = f"{r.cache_hit_ratio:.2%}" if r.cache_hit_ratio is not None else "too few reads yet to judge"
    age = f"{r.xid_age:,} (wraparound at about 2,100,000,000)" if r.xid_age is not None else "unknown"
    fullest = r.sequences[0] if r.sequences else None
    sequences = f"{fullest['sequence']} {fullest['used']:.2%} used" if fullest else "none in use"
    return f"MAINTENANCE\n  cache hit      {ratio}\n  xid age        {age}\n  fullest seq.   {sequences}"


def _statements(r: HealthReport) -> str:
    if r.statements is None:
        return ""
    rows = [
        [f"{s['total_ms']:,.0f} ms", s["calls"], f"{s['mean_ms']:.2f} ms", _one_line(s["query"])]
        for s in r.statements
    ]
    return "SLOW QUERIES (pg_stat_statements, by total time)\n" + _table(
        ["total", "calls", "mean", "query"], rows
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "never"


def _one_line(query: str | None) -> str:
    return " ".join((query or "").split())[:80]


def _replication(r: HealthReport) -> str:
    replication = r.replication
    if replication is None:
        return ""
    if replication["role"] == "standby":
        receiver = replication["receiver"] or "no WAL receiver"
        return f"REPLICATION      standby, replay lag {replication['replay_lag_seconds']:.1f} s ({receiver})"
    standbys = [
        [
            s["application_name"] or "",
            s["client_addr"] or "local",
            f"{s['state']} ({s['sync_state']})",
            f"{s['replay_lag_seconds'] or 0.0:.1f} s",
            _bytes(s["replay_behind_bytes"]),
        ]
        for s in replication["standbys"]
    ]
    slots = [
        [s["slot_name"], s["slot_type"], "active" if s["active"] else "INACTIVE", _bytes(s["retained_bytes"])]
        for s in replication["slots"]
    ]
    parts = [f"REPLICATION      primary, {len(standbys)} standby(s), {len(slots)} slot(s)"]
    if standbys:
        parts.append(_table(["standby", "from", "state", "replay lag", "behind"], standbys))
    if slots:
        parts.append(_table(["slot", "type", "", "WAL kept"], slots))
    return "\n".join(parts)
