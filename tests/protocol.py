"""Round trips of one pooled connection, read from libpq's own protocol trace."""

import tempfile
from contextlib import contextmanager

from psycopg import pq


@contextmanager
def round_trips(engine):
    """Trace one pooled connection's protocol with libpq's PQtrace; yield (connection, result dict).

    A round trip is a run of messages from the client followed by the server's answer,
    so the count is the number of times the direction turns from client to server.
    """
    result: dict[str, int] = {}
    with engine.connect() as conn:
        conn.commit()  # the pool's first checkout; the connection is now idle
        dbapi = conn.connection.dbapi_connection
        with tempfile.TemporaryFile("w+") as trace:
            dbapi.pgconn.trace(trace.fileno())
            dbapi.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                yield conn, result
            finally:
                dbapi.pgconn.untrace()
            trace.seek(0)
            directions = [line.split("\t")[0] for line in trace.read().splitlines() if line]
    turns = zip(["B", *directions], directions, strict=False)
    result["round_trips"] = sum(1 for turn in turns if turn == ("B", "F"))
