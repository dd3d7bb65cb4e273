"""The health report's replication section, from both sides of a real streaming standby."""

import json
import time
from typing import Any

import jsonschema
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_until
from tests.health.test_collect import SCHEMA
from tests.replication import SLOT, connect


def environ_of(url) -> dict[str, str]:
    return {"ATSBOOST_ENV": "testing", "DATABASE_URL": url.render_as_string(hide_password=False)}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_the_primary_lists_its_standby_and_slot_and_the_standby_its_lag(replicated, invoke):
    assert replicated.replayed()

    def primary_report() -> dict[str, Any]:
        report: dict[str, Any] = json.loads(
            invoke("health", "--json", env=environ_of(replicated.primary.url)).stdout
        )
        jsonschema.validate(report, SCHEMA)
        return report

    # A new standby reports its replay position within wal_receiver_status_interval; until then, null.
    assert wait_until(
        lambda: primary_report()["replication"]["standbys"][0]["replay_behind_bytes"] is not None, 15
    )
    replication = primary_report()["replication"]
    [standby] = replication["standbys"]
    assert replication["role"] == "primary" and standby["state"] == "streaming"
    assert standby["client_addr"] == "127.0.0.1" and 0 <= standby["replay_behind_bytes"] < 2**24
    [slot] = replication["slots"]
    assert (slot["slot_name"], slot["active"]) == (SLOT, True)
    shown = invoke("health", env=environ_of(replicated.primary.url)).stdout
    assert "REPLICATION      primary, 1 standby(s), 1 slot(s)" in shown and "streaming" in shown

    on_standby = json.loads(invoke("health", "--json", env=environ_of(replicated.standby.url)).stdout)
    jsonschema.validate(on_standby, SCHEMA)
    assert on_standby["replication"]["role"] == "standby"
    assert (
        on_standby["replication"]["replay_lag_seconds"] == 0
        and on_standby["replication"]["receiver"] == "streaming"
    )
    metrics = samples(
        invoke("health", "--format", "prometheus", env=environ_of(replicated.standby.url)).stdout
    )
    assert (
        metrics[("pg_replication_is_replica", ())] == 1 and metrics[("pg_replication_lag_seconds", ())] == 0
    )


def test_check_warns_on_an_inactive_slot_and_a_lagging_standby(replicated, invoke):
    with connect(replicated.primary.url) as conn:
        conn.execute("SELECT pg_create_physical_replication_slot('forgotten', true)")
    try:
        checked = invoke("health", "--check", env=environ_of(replicated.primary.url))
        assert checked.returncode == 1
        assert "replication slot forgotten: forgotten is inactive and keeps" in checked.stdout
        metrics = samples(
            invoke("health", "--format", "prometheus", env=environ_of(replicated.primary.url)).stdout
        )
        assert metrics[("pg_replication_slots_active", (("slot_name", "forgotten"),))] == 0
        assert metrics[("pg_replication_slots_active", (("slot_name", SLOT),))] == 1
        assert metrics[("pg_replication_slots_pg_wal_lsn_diff", (("slot_name", "forgotten"),))] >= 0
    finally:
        with connect(replicated.primary.url) as conn:
            conn.execute("SELECT pg_drop_replication_slot('forgotten')")
    with connect(replicated.standby.url) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            with connect(replicated.primary.url) as primary:
                primary.execute("CREATE TABLE IF NOT EXISTS lag_probe (x int)")
                for _ in range(15):  # the primary moves on; the paused standby falls behind
                    primary.execute("INSERT INTO lag_probe VALUES (1)")
                    time.sleep(0.1)
            env = environ_of(replicated.standby.url)
            checked = invoke("health", "--check", "--warning-replication-lag", "1", env=env)
            primary_side = invoke(
                "health",
                "--check",
                "--warning-replication-lag",
                "0.5",
                env=environ_of(replicated.primary.url),
            )
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
    assert checked.returncode == 1 and "replication lag: replay lag" in checked.stdout, checked.stdout
    assert primary_side.returncode == 1 and "replication lag: replay lag" in primary_side.stdout, (
        primary_side.stdout
    )
    assert replicated.replayed()
