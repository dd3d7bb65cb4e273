"""The health report's rows as typed records: one TypedDict per section, as docs/health.schema.json has it.

Rows come from psycopg's ``dict_row``, so they stay plain dicts (the JSON document is
``dataclasses.asdict`` of the report); the types tell an editor and mypy their fields, and
``tests/health/test_records.py`` keeps each one equal to the schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict


class TableSize(TypedDict):
    """A table's size: heap, indexes, and both."""

    table: str
    table_bytes: int
    index_bytes: int
    total_bytes: int


class TableStats(TypedDict):
    """A table's statistics: rows, scans, dead tuples, the last (auto)vacuum and analyze."""

    table: str
    estimated_rows: int
    seq_scans: int
    idx_scans: int
    dead_tuples: int
    last_vacuum: datetime | None
    last_autovacuum: datetime | None
    last_analyze: datetime | None
    last_autoanalyze: datetime | None
    seq_scan_heavy: bool


class LongQuery(TypedDict):
    """A query running longer than the threshold."""

    pid: int
    user: str | None
    application: str | None
    seconds: float
    state: str | None
    wait_event: str | None
    query: str | None


class Blocking(TypedDict):
    """A session waiting for a lock, and the one holding it."""

    blocked_pid: int
    blocked_query: str | None
    blocked_seconds: float | None
    blocking_pid: int
    blocking_state: str | None
    blocking_query: str | None


class InvalidIndex(TypedDict):
    """An index a failed concurrent build left INVALID."""

    index: str
    table: str
    definition: str


class UnusedIndex(TypedDict):
    """An index never scanned, above the size threshold."""

    index: str
    table: str
    bytes: int
    scans: int


class DuplicateIndex(TypedDict):
    """An index another one covers."""

    index: str
    covered_by: str
    table: str


class SequenceUse(TypedDict):
    """How much of its range a sequence has used."""

    sequence: str
    last_value: int
    max_value: int
    used: float


class StatementStats(TypedDict):
    """A statement of pg_stat_statements, by total time."""

    query: str | None
    calls: int
    total_ms: float
    mean_ms: float


class Standby(TypedDict):
    """A standby, as the primary's pg_stat_replication sees it."""

    application_name: str | None
    client_addr: str | None
    state: str | None
    sync_state: str | None
    write_lag_seconds: float | None
    flush_lag_seconds: float | None
    replay_lag_seconds: float | None
    replay_behind_bytes: int | None


class Slot(TypedDict):
    """A replication slot and the WAL it keeps."""

    slot_name: str
    slot_type: str
    active: bool
    retained_bytes: int | None


class Replication(TypedDict):
    """Replication as the server the report reaches sees it."""

    role: str
    standbys: list[Standby]
    slots: list[Slot]
    replay_lag_seconds: float | None
    receiver: str | None


class Host(TypedDict):
    """One host of a multi-host DATABASE_URL, asked on its own: its role and, for a primary, its timeline."""

    host: str
    role: str  # primary, standby, unreachable
    timeline: int | None
    error: str | None


class PrivilegeGap(TypedDict):
    """A privilege the connected role lacks on a schema, table or sequence it uses, and its GRANT."""

    object: str
    kind: str  # schema, table, sequence
    missing: list[str]
    grant: str


class Role(TypedDict):
    """The role the report connected as: what it may do beyond changing rows, and what it cannot."""

    name: str
    superuser: bool
    createrole: bool
    createdb: bool
    bypassrls: bool
    replication: bool
    owns: list[str]  # tables it owns, or may act as owner of
    missing: list[PrivilegeGap]
