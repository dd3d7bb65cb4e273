"""Waking a thread or task blocked on a connection, without freeing the connection under it."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import psycopg

logger = logging.getLogger("atsboost.runtime.shutdown")


def shut_socket(connection: Any) -> None:
    """Shut an abandoned psycopg connection's socket (sync or async), so that its holder gets an error.

    Not ``close()``: the holder (a thread inside libpq, or a task suspended in psycopg's
    wait) still uses that connection, and freeing it under the holder crashes the
    process. A socket shut down wakes the holder with an error; it then closes the
    connection itself.
    """
    if connection is None:
        return
    try:
        with socket.socket(fileno=os.dup(connection.pgconn.socket)) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error) as exc:  # already closed, or a socket that is gone
        logger.debug("shutting an abandoned connection's socket: %s", exc)
