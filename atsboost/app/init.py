"""``atsboost-db init``: prepare a database for its first deploy, migrate then seed, safe to repeat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.orm import Session

from atsboost import migrations
from atsboost.app.catalogue import PlanSpec, load_catalogue
from atsboost.app.models import SubscriptionPlan
from atsboost.app.seed import SeedResult, check_admin_password, run
from atsboost.config.settings import Settings, get_settings
from atsboost.migrations.results import MigrationResult
from atsboost.runtime.engine import create_engine, engine_url
from atsboost.runtime.provisioning import create_if_missing


@dataclass(frozen=True)
class InitResult:
    """What ``init`` did: the migration, then the seeding, and the plans now in the database."""

    database: str
    revision: tuple[str, ...]
    migration: MigrationResult
    seed: SeedResult
    plans: tuple[PlanSpec, ...]
    created: bool = False  # the database itself did not exist, and was created

    @property
    def changed(self) -> bool:
        """True when this run created the database, migrated or seeded anything."""
        return self.created or bool(self.migration.applied) or self.seed.changed


def initialize(
    settings: Settings | None = None, *, plans: Sequence[PlanSpec] | None = None, force: bool | None = None
) -> InitResult:
    """First deploy: create the database if need be, migrate every branch to its head, then seed.

    Every migration gate applies. The database is created (as Rails' ``db:prepare``
    does) when the server says it does not exist and the role may create it.
    """
    settings = settings or get_settings()
    # A bad catalogue or a weak production password fails before anything is written.
    plans = load_catalogue() if plans is None else plans
    check_admin_password(settings)
    created = create_if_missing(settings) is not None
    migration = migrations.upgrade(settings, force=force)
    engine = create_engine(settings)
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            seeded = run(session, settings=settings, plans=plans)
            revision = tuple(MigrationContext.configure(session.connection()).get_current_heads())
            rows = session.scalars(select(SubscriptionPlan).order_by(SubscriptionPlan.sort_order)).all()
        database = engine_url(engine).render_as_string(hide_password=True)
    finally:
        engine.dispose()
    listed = tuple(
        PlanSpec(
            p.code,
            p.name,
            p.price_cents,
            p.billing_interval,
            p.currency,
            tuple(p.features),
            p.limits,
            p.is_active,
            p.sort_order,
        )
        for p in rows
    )
    return InitResult(database, revision, migration, seeded, listed, created=created)
