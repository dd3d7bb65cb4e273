"""Round trips of one pooled connection, read from libpq's own protocol trace.

A round trip is a run of messages from the client followed by the server's answer,
so the count is the number of times the direction turns from client to server.
"""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from psycopg import pq


@contextmanager
def traced(pgconn) -> Iterator[dict[str, int]]:
    """Trace ``pgconn`` (libpq's PQtrace) for the block; the dict then holds ``round_trips``."""
    result: dict[str, int] = {}
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield result
        finally:
            pgconn.untrace()
        trace.seek(0)
        result["round_trips"] = turns(trace.read())


def turns(trace: str) -> int:
    """The times a libpq trace turns from the server's messages (B) to the client's (F)."""
    directions = [line.split("\t")[0] for line in trace.splitlines() if line]
    return sum(1 for turn in zip(["B", *directions], directions, strict=False) if turn == ("B", "F"))


@contextmanager
def round_trips(engine):
    """Trace one pooled connection of a sync engine; yield (connection, result dict)."""
    with engine.connect() as conn:
        conn.commit()  # the pool's first checkout; the connection is now idle
        with traced(conn.connection.dbapi_connection.pgconn) as result:
            yield conn, result


async def async_round_trips(conn, transaction) -> int:
    """Count one transaction's round trips on an AsyncConnection ``conn``: ``await transaction(conn)``."""
    raw = await conn.get_raw_connection()
    with traced(raw.driver_connection.pgconn) as result:
        await transaction(conn)
    return result["round_trips"]


def trips_of(engine, work) -> int:
    """Count the round trips of ``work()`` on the one connection of a pool of size 1 (sync engine)."""
    with engine.connect() as conn:
        conn.commit()  # connected, and idle again
        pgconn = conn.connection.driver_connection.pgconn
    with traced(pgconn) as result:
        work()
    return result["round_trips"]


async def async_trips_of(engine, work) -> int:
    """``trips_of`` for an AsyncEngine: the round trips of ``await work()`` on its one connection."""
    async with engine.connect() as conn:
        await conn.commit()
        pgconn = (await conn.get_raw_connection()).driver_connection.pgconn
    with traced(pgconn) as result:
        await work()
    return result["round_trips"]
