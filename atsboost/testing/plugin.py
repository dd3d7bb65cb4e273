"""atsboost's pytest plugin: a migrated test database, a rolled-back transaction per test.

Registered as the ``pytest11`` entry point ``atsboost``: installing atsboost in a
project's test environment is all it takes (``-p no:atsboost`` turns it off).

Fixtures:

- ``atsboost_database`` (session): this process's :class:`~atsboost.testing.database.TestDatabase`,
  migrated with the project's Alembic project and reused between runs while its
  revisions are unchanged (``--atsboost-create-db`` rebuilds it).
- ``db_connection``, ``db_session`` (each test): a Connection, and a Session joined to
  it with ``join_transaction_mode="create_savepoint"``, in a transaction rolled back
  after the test; meanwhile ``atsboost.db`` hands the code under test the same
  connection, so an endpoint called through a test client sees the test's rows.
- ``async_db_connection``, ``async_db_session``: the same for ``atsboost.aio``, on the
  test's event loop (pytest-asyncio).
- ``atsboost_seed``: the first admin and the plans, seeded in the test's transaction.

``@pytest.mark.atsboost_db(transactional=False)`` gives a test real commits instead
(several connections, locks, LISTEN/NOTIFY); the database is put back afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from atsboost.errors import AtsboostError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
    from sqlalchemy.orm import Session

    from atsboost.app.seed import SeedResult
    from atsboost.config.settings import Settings
    from atsboost.config.testing import TestSettings
    from atsboost.testing.database import TestDatabase

try:
    import pytest_asyncio
except ImportError:  # the asyncio fixtures then say what to install
    pytest_asyncio = None  # type: ignore[assignment]

T = TypeVar("T")
MARKER = "atsboost_db"
_NO_ASYNCIO = "atsboost: {} needs pytest-asyncio: pip install pytest-asyncio"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add --atsboost-create-db."""
    group = parser.getgroup("atsboost", "atsboost's test database")
    group.addoption(
        "--atsboost-create-db",
        action="store_true",
        default=False,
        help="migrate the test database afresh, even if no revision changed since it was migrated",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the atsboost_db marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(transactional=True): transactional=False gives the test real commits on the test "
        "database (several connections, locks, LISTEN/NOTIFY), put back as migrated afterwards",
    )


def explained(step: Callable[[], T]) -> T:
    """Run a fixture's set-up; an atsboost error fails the test in one line, without a traceback."""
    try:
        return step()
    except AtsboostError as exc:
        failure = f"atsboost: {exc}"
    pytest.fail(failure, pytrace=False)  # outside the except: no chained traceback


@pytest.fixture(scope="session")
def atsboost_test_settings(pytestconfig: pytest.Config) -> TestSettings:
    """Where the tests' databases are made, read once from the environment."""
    from atsboost.config.testing import read_test_settings

    return explained(lambda: read_test_settings(os.environ, pytestconfig.rootpath))


@pytest.fixture(scope="session")
def atsboost_test_server(atsboost_test_settings: TestSettings) -> Settings:
    """Give the settings of the server (ATSBOOST_TEST_DATABASE_URL, else the embedded PostgreSQL)."""
    from atsboost.testing.databases import server_settings

    return explained(lambda: server_settings(atsboost_test_settings))


@pytest.fixture(scope="session")
def atsboost_database(atsboost_test_server: Settings, pytestconfig: pytest.Config) -> Iterator[TestDatabase]:
    """Give this process its migrated test database, dropped when the session ends."""
    from atsboost.testing.database import open_database

    run = _run(pytestconfig)
    database = explained(lambda: open_database(atsboost_test_server, pytestconfig.rootpath, run))
    try:
        yield database
    finally:
        database.close()


def _run(config: pytest.Config) -> Any:
    from atsboost.testing.databases import Run

    create = bool(config.getoption("atsboost_create_db"))
    workerinput = getattr(config, "workerinput", None)  # set by pytest-xdist in its workers
    if workerinput is None:
        return Run(uuid.uuid4().hex, "main", create)
    return Run(str(workerinput["testrunuid"]), str(workerinput["workerid"]), create)


def transactional(request: pytest.FixtureRequest) -> bool:
    """Whether the test runs in a rolled-back transaction (not marked ``transactional=False``)."""
    marker = request.node.get_closest_marker(MARKER)
    return True if marker is None else bool(marker.kwargs.get("transactional", True))


@pytest.fixture
def db_connection(atsboost_database: TestDatabase, request: pytest.FixtureRequest) -> Iterator[Connection]:
    """Give a Connection to the test database, in a transaction rolled back after the test."""
    with atsboost_database.connection(transactional=transactional(request)) as conn:
        yield conn


@pytest.fixture
def db_session(db_connection: Connection) -> Iterator[Session]:
    """Give a Session in the test's transaction: the code under test may commit and roll back freely."""
    from sqlalchemy.orm import Session

    with Session(bind=db_connection, join_transaction_mode="create_savepoint") as session:
        yield session


@pytest.fixture
def atsboost_seed(db_session: Session, atsboost_database: TestDatabase) -> SeedResult:
    """Seed the first admin and the subscription plans, committed in the test's transaction."""
    from atsboost.app import seed

    result = explained(lambda: seed.run(db_session, settings=atsboost_database.settings))
    db_session.commit()
    return result


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def async_db_connection(
        atsboost_database: TestDatabase, request: pytest.FixtureRequest
    ) -> AsyncIterator[AsyncConnection]:
        """Give an AsyncConnection on the test's loop, in a transaction rolled back after the test."""
        async with atsboost_database.async_connection(transactional=transactional(request)) as conn:
            yield conn

    @pytest_asyncio.fixture
    async def async_db_session(async_db_connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
        """Give an AsyncSession in the test's transaction, on the test's loop."""
        from sqlalchemy.ext.asyncio import AsyncSession

        joined = AsyncSession(bind=async_db_connection, join_transaction_mode="create_savepoint")
        async with joined as session:
            yield session

else:

    @pytest.fixture
    def async_db_connection() -> None:
        """Needs pytest-asyncio, which is not installed."""
        pytest.fail(_NO_ASYNCIO.format("async_db_connection"), pytrace=False)

    @pytest.fixture
    def async_db_session() -> None:
        """Needs pytest-asyncio, which is not installed."""
        pytest.fail(_NO_ASYNCIO.format("async_db_session"), pytrace=False)
