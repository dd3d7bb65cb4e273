"""A write refused by a server that is read-only for now is a failover under way, not a mistake.

Behind HAProxy, or while a failover manager starts a crashed primary again (Patroni
starts it read-only until it has made sure it still holds the leader lock), a
connection can reach a server that refuses writes for a moment: PostgreSQL answers
SQLSTATE 25006. When the server says it is a hot standby or read-only by default (the
``in_hot_standby`` and ``default_transaction_read_only`` parameters it reports,
PostgreSQL 14 and later), or said so when the connection was made, the error is made a
disconnect: SQLAlchemy invalidates the connection and recycles the pool's older ones,
and ``run_transaction`` runs the transaction again on a fresh connection, within its
deadline. What the server said at connect time counts because a promotion races the
write: a transaction begun just before it ends is read-only, and by the time its error
is read the server already says it is a primary. A caller's own read-only transaction
(``SET TRANSACTION READ ONLY``) on a connection made to a writable server still gets
25006 at once.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.pool import ConnectionPoolEntry

from atsboost.runtime.retry import sqlstate

logger = logging.getLogger(__name__)

READ_ONLY_SQL_TRANSACTION = "25006"


_CONNECTED_READ_ONLY = "atsboost_connected_read_only"  # in the pool entry's info: the server said so then


def install(engine: Engine) -> None:
    """Make a write refused by a read-only server a disconnect, on this engine (sync, or an async one's)."""
    event.listen(engine, "connect", _note_server)
    event.listen(engine, "handle_error", _refused_by_standby)


def _note_server(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_CONNECTED_READ_ONLY] = read_only_server(record.driver_connection)


def _refused_by_standby(context: ExceptionContext) -> None:
    if sqlstate(context.original_exception) != READ_ONLY_SQL_TRANSACTION:
        return
    if context.connection is None:
        return
    pooled = context.connection.connection
    if not (pooled.info.get(_CONNECTED_READ_ONLY) or read_only_server(pooled.driver_connection)):
        return
    logger.warning(
        "a write reached a server that is read-only for now (a failover under way); reconnecting",
        extra={"event": "write_refused_by_standby"},
    )
    context.is_disconnect = True


def read_only_server(driver_connection: Any) -> bool:
    """Whether the server of a psycopg connection last said it is a hot standby or read-only by default."""
    info = getattr(driver_connection, "info", None)
    if info is None:
        return False
    return "on" in (
        info.parameter_status("in_hot_standby"),
        info.parameter_status("default_transaction_read_only"),
    )
