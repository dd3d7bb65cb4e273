"""The exceptions atsboost raises; every message says what is wrong and how to fix it."""

from __future__ import annotations


class AtsboostError(Exception):
    """Base class: catch this to handle any failure atsboost reports."""


class ConfigurationError(AtsboostError):
    """The environment does not describe a usable database configuration."""


class EmbeddedServerError(AtsboostError):
    """The embedded development PostgreSQL could not be started, found or stopped."""


class DatabaseUnavailableError(AtsboostError):
    """The database could not be reached."""


class DatabaseRefusedError(AtsboostError):
    """The database refused an operation (a missing privilege, say); the message names the fix."""


class MigrationError(AtsboostError):
    """A migration could not be planned or applied; the message names the revision."""


class RevisionNotRenderableError(MigrationError):
    """A revision's SQL cannot be rendered offline (it reads the database, say); online it runs as written."""

    def __init__(self, revision: str, reason: str) -> None:
        super().__init__(f"revision {revision} cannot be rendered as offline SQL: {reason}")
        self.revision = revision
        self.reason = reason


class MigrationRefusedError(MigrationError):
    """A safety gate refused to migrate (production force gate); nothing was changed."""


class MigrationLintError(MigrationRefusedError):
    """The lint found unwaived errors in pending revisions (MIGRATION_LINT=error); nothing was changed."""


class RolesError(AtsboostError):
    """The database roles could not be set up as asked; the message says who can."""


class SeedError(AtsboostError):
    """Seeding could not run; nothing was created."""


class SeedRefusedError(SeedError):
    """A production rule refused to seed (e.g. a weak admin password); nothing was created."""


class CatalogueError(SeedError):
    """The plan catalogue is malformed; the message names the file, the plan and the field."""


class TestDatabaseError(AtsboostError):
    """A test database could not be prepared or used as asked; the message names the fix."""

    __test__ = False  # a name pytest would otherwise collect from a test module that imports it


class TransactionOutcomeUnknownError(AtsboostError):
    """The connection broke during COMMIT: the transaction may or may not have been applied."""


def first_line(exc: BaseException) -> str:
    """Return the first line of an error's message (the driver's, for a SQLAlchemy error).

    Reports and logs show one line; the rest of a driver message (DETAIL, HINT,
    the SQL) is noise there, and may echo data.
    """
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
