"""A dialect that turns transactions into SAVEPOINTs on a test's one connection.

A test runs inside one outer transaction that is rolled back afterwards. The code
under test opens its own Connections and Sessions, and commits or rolls back as it
would in production; on this dialect, registered under its own name
(``postgresql+atsboost_test``) through SQLAlchemy's documented dialect hooks, each
such transaction is a SAVEPOINT of the outer one: BEGIN makes one, COMMIT releases
it, ROLLBACK rolls back to it. So an application's ``rollback()`` after an
IntegrityError undoes its own work and keeps the test's rows, and nothing is ever
committed for real.

Every engine of this dialect has a pool of exactly one connection (the test's), so
the dialect instance keeps that connection's SAVEPOINTs. They nest: a transaction
begun later ends first, as in any code that opens one session inside another. The
connection is in psycopg's autocommit mode, so the test's own transaction is begun
here, in the same round trip as its first SAVEPOINT, and ended by the lender
(``testing.lending``): a test costs the round trips of a hand-written one.
A READ ONLY transaction is one here too (``SET TRANSACTION READ ONLY`` in its
SAVEPOINT, which ends by rolling back to it); an isolation level cannot be set
inside a transaction and is left as the outer one's; AUTOCOMMIT would commit the
test's transaction, so it is refused with the way out.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg.pq import TransactionStatus
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg, PGDialectAsync_psycopg
from sqlalchemy.engine import URL

from atsboost.errors import TestDatabaseError

logger = logging.getLogger("atsboost.testing")

NAME = "atsboost_test"
"""The driver name of this dialect: ``postgresql+atsboost_test://``."""


class SavepointTransactions:
    """The hooks both dialects share: each transaction of the code under test is a SAVEPOINT."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.savepoints: list[tuple[str, bool]] = []  # (name, read only), innermost last
        self._made = 0
        self._read_only_next = False

    def do_begin(self, dbapi_connection: Any) -> None:
        """Begin: a SAVEPOINT of the test's transaction (begun now if need be), READ ONLY if asked."""
        self._made += 1
        name = f"atsboost_test_{self._made}"
        status = dbapi_connection.driver_connection.info.transaction_status  # psycopg's own
        idle = status == TransactionStatus.IDLE
        statements = ["BEGIN"] if idle else []
        statements.append(f"SAVEPOINT {name}")
        if self._read_only_next:
            statements.append("SET TRANSACTION READ ONLY")
        dbapi_connection.cursor().execute("; ".join(statements))  # one round trip
        self.savepoints.append((name, self._read_only_next))

    def do_commit(self, dbapi_connection: Any) -> None:
        """Commit: release the SAVEPOINT; a READ ONLY one wrote nothing and is rolled back to."""
        name, read_only = self.savepoints.pop()
        undo = f"ROLLBACK TO SAVEPOINT {name}; " if read_only else ""  # also ends its READ ONLY
        dbapi_connection.cursor().execute(f"{undo}RELEASE SAVEPOINT {name}")

    def do_rollback(self, dbapi_connection: Any) -> None:
        """Roll back to the SAVEPOINT and release it; with none open (a pool's reset), nothing."""
        if not self.savepoints:
            return
        name, _ = self.savepoints.pop()
        dbapi_connection.cursor().execute(f"ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}")

    def forget(self) -> None:
        """Forget the SAVEPOINTs: the outer transaction they belonged to was rolled back."""
        self.savepoints.clear()
        self._read_only_next = False

    def set_readonly(self, connection: Any, value: bool) -> None:  # noqa: FBT001 (SQLAlchemy's signature)
        """Remember READ ONLY for the next BEGIN: inside a transaction it is set per SAVEPOINT."""
        self._read_only_next = bool(value)

    def get_readonly(self, connection: Any) -> bool:
        """Tell whether the next BEGIN is READ ONLY."""
        return self._read_only_next

    def set_deferrable(self, connection: Any, value: bool) -> None:  # noqa: FBT001 (SQLAlchemy's signature)
        """DEFERRABLE only matters to a SERIALIZABLE READ ONLY top-level transaction: ignored here."""

    def get_deferrable(self, connection: Any) -> bool:
        """Say no transaction here is DEFERRABLE."""
        return False

    def set_isolation_level(self, dbapi_connection: Any, level: str) -> None:
        """Refuse AUTOCOMMIT; leave any other level as the test transaction's (a SAVEPOINT has none)."""
        if level == "AUTOCOMMIT":
            raise TestDatabaseError(
                "AUTOCOMMIT was asked for inside a test's transaction, which it would commit; mark the "
                "test @pytest.mark.atsboost_db(transactional=False) to give it a real, committed database"
            )
        logger.debug("isolation level %s is not applied inside a test's transaction", level)


class TestDialect(SavepointTransactions, PGDialect_psycopg):
    """psycopg's dialect, with each transaction a SAVEPOINT of the test's."""

    supports_statement_cache = True

    @classmethod
    def get_async_dialect_cls(cls, url: URL) -> type[AsyncTestDialect]:
        """Return the asyncio twin, which ``create_async_engine`` asks for."""
        return AsyncTestDialect


class AsyncTestDialect(SavepointTransactions, PGDialectAsync_psycopg):
    """psycopg's asyncio dialect, with each transaction a SAVEPOINT of the test's."""

    supports_statement_cache = True


registry.register(f"postgresql.{NAME}", __name__, "TestDialect")
