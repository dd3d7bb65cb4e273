"""``atsboost-db health --format prometheus``: parsed with prometheus_client, its numbers are ``--json``'s."""

import json

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text


def metrics_of(output):
    """{(name, labels): value} of every sample in a Prometheus text exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(output)
        for sample in family.samples
    }


def test_the_prometheus_format_parses_and_matches_the_json(invoke, environ, make_engine, database_url):
    assert invoke("migrate", env=environ).returncode == 0
    engine = make_engine()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE pairs (n int)"))
        conn.execute(text("INSERT INTO pairs VALUES (1), (1)"))
        conn.execute(text("CREATE SEQUENCE tickets MAXVALUE 100"))
        conn.execute(text("SELECT setval('tickets', 90)"))
    libpq = database_url.set(drivername="postgresql").render_as_string(hide_password=False)
    # A concurrent build that fails leaves its index behind, invalid.
    with psycopg.connect(libpq, autocommit=True) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY pairs_n ON pairs (n)")

    as_json = json.loads(invoke("health", "--json", env=environ).stdout)
    exposed = invoke("health", "--format", "prometheus", env=environ)
    assert exposed.returncode == 0, exposed.stderr
    found = metrics_of(exposed.stdout)

    assert found[("pg_up", ())] == 1
    datname = database_url.database
    assert found[("pg_database_size_bytes", (("datname", datname),))] == as_json["database_bytes"]
    assert found[("pg_settings_max_connections", ())] == as_json["usage"]["max_connections"]
    assert found[("atsboost_health_connections_usable", ())] == as_json["usage"]["usable"]
    assert found[("atsboost_health_invalid_indexes", ())] == len(as_json["invalid_indexes"]) == 1
    assert found[("atsboost_health_sequence_used_ratio", (("sequence", "public.tickets"),))] == 0.9
    # The age grows with every transaction the cluster's other databases commit between the two reads.
    assert found[("atsboost_health_xid_age", ())] >= as_json["xid_age"] > 0
    assert found[("atsboost_health_pending_revisions", ())] == as_json["connection"]["pending_revisions"] == 0
    assert found[("atsboost_health_connections", (("state", "active"),))] >= 1
    statuses = {"ok": 0, "warning": 1, "critical": 2}
    for check in as_json["checks"]:
        assert (
            found[("atsboost_health_check_status", (("check", check["name"]),))] == statuses[check["status"]]
        )
    assert found[("atsboost_health_status", ())] == statuses[as_json["status"]] >= 1  # the invalid index


def test_an_unreachable_database_is_pg_up_0_and_nothing_else_made_up(invoke, unused_tcp_port):
    env = {
        "ATSBOOST_ENV": "testing",
        "DATABASE_URL": f"postgresql://app:s3cret@127.0.0.1:{unused_tcp_port}/db",
    }
    exposed = invoke("health", "--format", "prometheus", env=env)
    assert exposed.returncode == 2  # as --check's CRITICAL
    found = metrics_of(exposed.stdout)
    assert found[("pg_up", ())] == 0
    assert not any(
        name.startswith("pg_database_size") or name == "pg_settings_max_connections" for name, _ in found
    )
    assert "s3cret" not in exposed.stdout + exposed.stderr
