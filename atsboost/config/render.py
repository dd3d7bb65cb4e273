"""The effective settings as ``atsboost-db config`` shows them: text for people, a dict for JSON."""

from __future__ import annotations

from typing import Any

from atsboost.config.settings import Settings


def describe(settings: Settings) -> dict[str, Any]:
    """Return the settings as a plain, JSON-ready dict (the password masked)."""
    pool = settings.pool
    return {
        "environment": settings.environment.value,
        "environment_origin": settings.environment_origin,
        "database_url": settings.masked_url,
        "embedded": settings.embedded,
        "embedded_dir": str(settings.embedded_dir) if settings.embedded else None,
        "ssl": {
            "mode": settings.ssl.mode,
            "root_cert": settings.ssl.root_cert,
            "origin": settings.ssl.origin,
        },
        "pool": {
            "size": pool.size,
            "max_overflow": pool.max_overflow,
            "timeout_seconds": pool.timeout,
            "idle_timeout_seconds": pool.idle_timeout,
            "size_origin": pool.size_origin,
        },
        "pool_mode": pool.mode,
        "migration_url": (settings.migration_url.masked() if settings.migration_url else None),
        "statement_timeout_ms": settings.statement_timeout_ms,
        "connect_timeout_seconds": settings.connect_timeout,
        "application_name": settings.application_name,
        "connection_parameters": {
            p.name: {"value": p.value, "source": p.source} for p in settings.connection_parameters().values()
        },
        "replicas": {
            "urls": [url.masked() for url in settings.replicas.urls],
            "max_lag_seconds": settings.replicas.max_lag,
            "sticky_seconds": settings.replicas.sticky_seconds,
        },
        "warnings": list(settings.warnings),
    }


def render(d: dict[str, Any]) -> str:
    """Return the described settings as aligned lines, warnings last."""
    pool, ssl = d["pool"], d["ssl"]
    statement = f"{d['statement_timeout_ms']} ms" if d["statement_timeout_ms"] is not None else "none"
    rows = [
        ("environment", f"{d['environment']} (from {d['environment_origin']})"),
        ("database", d["database_url"]),
        ("embedded", f"yes, data in {d['embedded_dir']}" if d["embedded"] else "no"),
        ("ssl", f"{ssl['mode'] or 'libpq default (prefer)'} ({ssl['origin']})"),
        ("ssl root cert", ssl["root_cert"] or "none"),
        ("pool", f"{pool['size']} connections + {pool['max_overflow']} overflow ({pool['size_origin']})"),
        ("pool timeout", f"{pool['timeout_seconds']} s waiting for a free connection"),
        ("idle timeout", f"{pool['idle_timeout_seconds']} s, then an unused connection is closed"),
        (
            "pool mode",
            d["pool_mode"] + (" (behind a transaction pooler)" if d["pool_mode"] == "transaction" else ""),
        ),
        ("migrations via", d["migration_url"] or "DATABASE_URL"),
        ("statement timeout", statement),
        ("connect timeout", f"{d['connect_timeout_seconds']} s"),
        ("application name", d["application_name"]),
        ("libpq parameters", _parameters(d["connection_parameters"])),
        ("read replicas", _replicas(d["replicas"])),
    ]
    if "server" in d:
        s = d["server"]
        rows.append(
            (
                "server",
                f"PostgreSQL {s['version']}, database {s['database']} as {s['user']}, "
                f"{'SSL' if s['ssl'] else 'no SSL'}, connected in {s['latency_ms']} ms",
            )
        )
    if "role" in d:
        rows.append(("role", _role(d["role"])))
    if d.get("hosts"):
        rows.append(("hosts", _hosts(d["hosts"])))
    rows.append(("connections", _arithmetic(d)))
    lines = [f"{name:<18} {value}" for name, value in rows]
    lines += [f"WARNING: {warning}" for warning in d["warnings"]]
    verdicts = d["role"]["checks"] if "role" in d else []
    lines += [f"{c['status'].upper()}: {c['name']}: {c['message']}" for c in verdicts if c["status"] != "ok"]
    return "\n".join(lines)


def _parameters(parameters: dict[str, dict[str, str]]) -> str:
    """Each libpq parameter atsboost sets, with where its value comes from: a setting, or the URL."""
    return f"\n{'':<18} ".join(f"{name}={p['value']} ({p['source']})" for name, p in parameters.items())


def _replicas(replicas: dict[str, Any]) -> str:
    """Say where read-only transactions go, and when a replica is not used."""
    if not replicas["urls"]:
        return "none (DATABASE_REPLICA_URLS): every transaction goes to the primary"
    text = (
        f"{', '.join(replicas['urls'])}; read-only transactions, unless replay lags over "
        f"{replicas['max_lag_seconds']:g} s or a write in the same context is under "
        f"{replicas['sticky_seconds']:g} s old"
    )
    for node in replicas.get("nodes", []):
        state = node["problem"] or f"{node['role']}, replay lag {node['replay_lag_seconds']:.1f} s"
        text += f"\n{'':<18} {node['url']}: {state}"
    return text


def _role(role: dict[str, Any]) -> str:
    """Return the role the application connects as: its attributes, what it owns, what it lacks."""
    powers = ("superuser", "createrole", "bypassrls", "createdb", "replication")
    held = (
        ", ".join(p.upper() if p != "superuser" else p for p in powers if role[p])
        or "no attribute beyond LOGIN"
    )
    owns = f"owns {len(role['owns'])} table(s) it uses" if role["owns"] else "owns no table it uses"
    lacks = f"lacks privileges on {len(role['missing'])} object(s)" if role["missing"] else "lacks nothing"
    return f"{role['name']}: {held}; {owns}; {lacks}"


def _hosts(hosts: list[dict[str, Any]]) -> str:
    """Each host of a multi-host DATABASE_URL: its role, a primary's timeline, why one did not answer."""
    lines = []
    for host in hosts:
        state = host["role"] if host["error"] is None else f"unreachable: {host['error']}"
        if host["timeline"] is not None:
            state += f", timeline {host['timeline']}"
        lines.append(f"{host['host']}: {state}")
    return f"\n{'':<18} ".join(lines)


def _arithmetic(d: dict[str, Any]) -> str:
    """Return the connection arithmetic: what one process may open, and how many processes fit."""
    per_process = d["pool"]["size"] + d["pool"]["max_overflow"]
    text = f"up to {per_process} per process (pool size + overflow)"
    if d["replicas"]["urls"]:
        text += ", and as many to each read replica"
    server = d.get("server")
    if server is None:
        return text + "; add --connect to compare with the server's max_connections"
    usable = server["max_connections"] - server["reserved_connections"]
    fits = usable // per_process if per_process else 0
    text += f"; the server allows {usable} (max_connections {server['max_connections']} - reserved "
    text += f"{server['reserved_connections']}): at most {fits} such processes (instances x workers)"
    if d["pool_mode"] == "transaction":
        text += "; behind a transaction pooler the pooler's pool size is what counts on the server"
    return text
