"""Alembic environment with atsboost's safety, in Alembic's familiar two-function shape.

The database comes from the environment (ATSBOOST_ENV or NODE_ENV, DATABASE_URL, SSL,
the embedded development server), never from alembic.ini: `atsboost-db config` shows it.
atsboost.migrations.run_migrations adds a dry run (-x dry_run=true or MIGRATION_DRYRUN),
a production force gate (-x force=true or MIGRATION_FORCE), one migrator at a time, lock
and statement timeouts, and each revision in its own transaction.
"""

import logging
from logging.config import fileConfig

from alembic import context

from atsboost.migrations import run_migrations

config = context.config

# Configure logging from alembic.ini only when nobody has yet (the alembic command), and
# never disable the application's own loggers.
if config.config_file_name is not None and not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# Your models' MetaData for autogenerate (the models of the schemas listed in alembic.ini's
# version_locations, such as atsboost's, are added), e.g.
#     from myapp.models import Base
#     target_metadata = Base.metadata
target_metadata = None


def run_migrations_offline() -> None:
    """Write the SQL of the requested range (alembic upgrade head --sql); no database needed."""
    run_migrations(target_metadata, offline=True)


def run_migrations_online() -> None:
    """Apply revisions to the database, with atsboost's safety around Alembic's run."""
    run_migrations(target_metadata, offline=False)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
