"""Replication, seen from the server the report reaches: a primary's standbys and slots, a standby's lag.

On a primary: each standby of ``pg_stat_replication`` (its state, and its write,
flush and replay lag), and each replication slot with the WAL it keeps (an inactive
slot keeps WAL until the disk is full). On a standby: its replay lag, measured as
atsboost's replica routing measures it (``runtime.replicas.LAG``), and whether its WAL
receiver is streaming.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from atsboost.health.records import Replication

IN_RECOVERY = "SELECT pg_is_in_recovery()"
STANDBYS = """
SELECT application_name, host(client_addr) AS client_addr, state, sync_state,
       extract(epoch FROM write_lag)::float AS write_lag_seconds,
       extract(epoch FROM flush_lag)::float AS flush_lag_seconds,
       extract(epoch FROM replay_lag)::float AS replay_lag_seconds,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS replay_behind_bytes
FROM pg_stat_replication ORDER BY application_name, client_addr
"""
SLOTS = """
SELECT slot_name, slot_type, active,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained_bytes
FROM pg_replication_slots ORDER BY slot_name
"""
STANDBY_LAG = """
SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now()
                 - coalesce(pg_last_xact_replay_timestamp(), pg_postmaster_start_time()))
       END::float AS replay_lag_seconds,
       (SELECT status FROM pg_stat_wal_receiver) AS receiver
"""

Rows = Callable[..., list[dict[str, Any]]]


def collect(rows: Rows) -> Replication:
    """Return the replication section for the server ``rows`` queries."""
    [recovery] = rows(IN_RECOVERY)
    if recovery["pg_is_in_recovery"]:
        [lag] = rows(STANDBY_LAG)
        return Replication(
            role="standby",
            standbys=[],
            slots=[],
            replay_lag_seconds=lag["replay_lag_seconds"],
            receiver=lag["receiver"],
        )
    standbys: list[Any] = rows(STANDBYS)
    slots: list[Any] = rows(SLOTS)
    return Replication(role="primary", standbys=standbys, slots=slots, replay_lag_seconds=None, receiver=None)
