"""The error of a database that cannot be reached, as atsboost's and as SQLAlchemy's.

Apart from ``diagnosis`` so that a command that reaches its database (``health``,
``migrate status``) never loads SQLAlchemy for it.
"""

from __future__ import annotations

import sqlalchemy.exc

from atsboost.errors import DatabaseUnavailableError


class DatabaseUnreachableError(DatabaseUnavailableError, sqlalchemy.exc.OperationalError):
    """A database that cannot be reached: atsboost's error, and SQLAlchemy's OperationalError too.

    As psycopg_pool's ``PoolTimeout`` is a psycopg ``OperationalError``, an application's
    ``except sqlalchemy.exc.OperationalError`` keeps catching it. The message is atsboost's
    alone (the URL masked); the driver's error is not kept, as ``from None`` drops it.
    """

    def __init__(self, message: str) -> None:
        sqlalchemy.exc.OperationalError.__init__(self, None, None, Exception(message))
        self.message = message
        self.args = (message,)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[DatabaseUnreachableError], tuple[str]]:
        return (type(self), (self.message,))
