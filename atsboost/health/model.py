"""The health report's typed shape: what ``atsboost-db health`` shows and its JSON documents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from atsboost.health.records import (
    Blocking,
    DuplicateIndex,
    Host,
    InvalidIndex,
    LongQuery,
    Replication,
    Role,
    SequenceUse,
    StatementStats,
    TableSize,
    TableStats,
    UnusedIndex,
)

SCHEMA_VERSION = 4


@dataclass
class ConnectionInfo:
    """Whether and how this report reached the server."""

    reachable: bool
    latency_ms: float | None = None
    server_version: str | None = None
    ssl: bool | None = None
    revision: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    pending_revisions: int | None = None
    edited_revisions: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Usage:
    """Connections against the server's limit, and this process's pool."""

    max_connections: int
    reserved: int
    total: int
    by_state: dict[str, int]
    by_application: dict[str, int]
    oldest_idle_in_transaction_seconds: float | None
    pool_checked_out: int | None
    pool_capacity: int | None

    @property
    def usable(self) -> int:
        """Slots ordinary roles can use: max_connections minus the reserved ones."""
        return self.max_connections - self.reserved


@dataclass
class HealthReport:
    """Everything ``atsboost-db health`` shows; ``as_dict()`` is the documented JSON."""

    generated_at: str
    database: str
    seconds: float
    connection: ConnectionInfo
    database_bytes: int | None = None
    largest_tables: list[TableSize] = field(default_factory=list)
    tables: list[TableStats] = field(default_factory=list)
    usage: Usage | None = None
    long_queries: list[LongQuery] = field(default_factory=list)
    blocking: list[Blocking] = field(default_factory=list)
    invalid_indexes: list[InvalidIndex] = field(default_factory=list)
    unused_indexes: list[UnusedIndex] = field(default_factory=list)
    duplicate_indexes: list[DuplicateIndex] = field(default_factory=list)
    cache_hit_ratio: float | None = None
    xid_age: int | None = None
    sequences: list[SequenceUse] = field(default_factory=list)
    statements: list[StatementStats] | None = None
    replication: Replication | None = None
    hosts: list[Host] = field(default_factory=list)
    role: Role | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as the JSON document described in docs/health.md."""
        from dataclasses import asdict

        data = asdict(self)
        data["schema_version"] = SCHEMA_VERSION
        if self.usage is not None:
            data["usage"]["usable"] = self.usage.usable
        return data
