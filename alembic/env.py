"""Alembic environment for atsboost, in Alembic's familiar two-function shape.

The database comes from atsboost's settings (ATSBOOST_ENV/NODE_ENV, DATABASE_URL,
SSL, the embedded development server), never from alembic.ini. Around Alembic's
own run, atsboost.migrations.environment adds what Alembic leaves to each team: a dry run
that knows the database (MIGRATION_DRYRUN=true or -x dry_run=true), a production
force gate (MIGRATION_REQUIRE_FORCE / MIGRATION_FORCE or -x force=true), one
migrator at a time (a PostgreSQL advisory lock), lock and statement timeouts, and
each revision in its own transaction.
"""

import logging
from logging.config import fileConfig

from alembic import context

from atsboost.app.models import Base
from atsboost.migrations import environment as migration_env
from atsboost.migrations import session as migration_session

config = context.config

# Configure logging from alembic.ini only when nobody has yet (the alembic CLI), and
# never disable the application's own loggers.
if config.config_file_name is not None and not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Write the SQL for the requested range to stdout; no database is needed.

    This is ``alembic upgrade head --sql``. The script starts with the same
    lock_timeout and statement_timeout an online run uses.
    """
    context.configure(
        dialect_name="postgresql",
        target_metadata=target_metadata,
        literal_binds=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        migration_session.emit_session_timeouts(context)
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply revisions to the database, with atsboost's safety around Alembic's run."""
    with migration_session.connection(config) as connection:
        run = migration_env.OnlineRun(context, connection)
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            **run.configure_options(),
        )
        run.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
