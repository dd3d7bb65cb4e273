"""Idempotent seeding: the first admin and the plan catalogue.

Seeding creates what is missing and never modifies what exists. Replicas seeding
at the same moment take turns on a transaction-level advisory lock, and every
insert is ``ON CONFLICT DO NOTHING``: never a duplicate, never an error because
another process got there first. In production, a weak or default admin password
is refused before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from atsboost.app.catalogue import PlanSpec, load_catalogue
from atsboost.app.models import SubscriptionPlan, User
from atsboost.app.passwords import MIN_LENGTH, hash_password, weakness
from atsboost.app.schema import schema_head
from atsboost.config.settings import DEFAULT_ADMIN_PASSWORD, Environment, Settings, get_settings
from atsboost.errors import SeedError, SeedRefusedError
from atsboost.migrations.project import alembic_config, script_directory
from atsboost.migrations.run.locks import lock_key

logger = logging.getLogger(__name__)

_SEED_LOCK = lock_key("atsboost:seed")


@dataclass(frozen=True)
class SeedResult:
    """What seeding created now and what it found already there."""

    admin_email: str
    admin_created: bool
    plans_created: tuple[str, ...]
    plans_existing: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """True when this run created anything."""
        return self.admin_created or bool(self.plans_created)


def run(
    session: Session, *, settings: Settings | None = None, plans: Sequence[PlanSpec] | None = None
) -> SeedResult:
    """Create the first admin if no active admin exists, and every catalogue plan that is missing.

    The caller commits (``session_scope`` does). ``plans`` defaults to the catalogue
    shipped with atsboost; pass ``load_catalogue(path)`` for another one.
    """
    settings = settings or get_settings()
    plans = load_catalogue() if plans is None else plans
    _require_schema(session, settings)
    session.execute(select(func.pg_advisory_xact_lock(_SEED_LOCK)))
    admin_email, admin_created = _ensure_admin(session, settings)
    created, existing = _ensure_plans(session, plans)
    result = SeedResult(admin_email, admin_created, tuple(created), tuple(existing))
    logger.info(
        "seeded: admin %s %s; plans created: %s; already present: %s",
        admin_email,
        "created" if admin_created else "already present",
        ", ".join(created) or "none",
        ", ".join(existing) or "none",
    )
    return result


def _require_schema(session: Session, settings: Settings) -> None:
    """Seeding needs atsboost's tables at atsboost's latest revision; the app's own may be anywhere."""
    scripts = script_directory(alembic_config(settings))
    needed = schema_head(scripts).revision
    current = tuple(MigrationContext.configure(session.connection()).get_current_heads())
    try:
        applied = {s.revision for s in scripts.iterate_revisions(current, "base")} if current else set()
    except CommandError:
        applied = set()  # a revision this code does not know: the message below says what to run
    if needed not in applied:
        raise SeedError(
            f"the database is not at atsboost's schema revision {needed} (current: "
            f"{', '.join(current) or 'none, no tables yet'}); run `atsboost-db migrate` first, "
            "or `atsboost-db init` to migrate and seed"
        )


def _ensure_admin(session: Session, settings: Settings) -> tuple[str, bool]:
    active_admin = select(User.email).where(User.role == "admin", User.is_active).order_by(User.id).limit(1)
    existing = session.scalar(active_admin)
    if existing is not None:
        return existing, False
    email = settings.seed.admin_email
    statement = (
        insert(User)
        .values(
            email=email,
            password_hash=hash_password(_admin_password(settings)),
            role="admin",
            must_change_password=True,
        )
        .on_conflict_do_nothing(index_elements=[func.lower(User.email)])
        .returning(User.id)
    )
    if session.scalar(statement) is None:
        raise SeedError(
            f"ADMIN_EMAIL {email} belongs to a user who is not an active admin; make that user an "
            "active admin, or set ADMIN_EMAIL to another address"
        )
    logger.info("created the first admin %s; the password must be changed at first login", email)
    return email, True


def check_admin_password(settings: Settings) -> None:
    """In production, refuse an unset, default or weak first-admin password, before anything is written."""
    if settings.environment is not Environment.PRODUCTION:
        return
    password = settings.seed.admin_password
    problem: str | None = None
    if password is None:
        problem = "ADMIN_INITIAL_PASSWORD is not set"
    elif settings.seed.admin_password_is_default:
        problem = "ADMIN_INITIAL_PASSWORD is the guide's published default"
    elif (weak := weakness(password)) is not None:
        problem = f"ADMIN_INITIAL_PASSWORD is too weak: {weak}"
    if problem:
        raise SeedRefusedError(
            f"refusing to create the first admin in production: {problem}. Nothing was created. "
            f"Set ADMIN_INITIAL_PASSWORD to a strong password of at least {MIN_LENGTH} characters "
            "(a passphrase of four or more unrelated words will do); the admin must change it at first login"
        )


def _admin_password(settings: Settings) -> str:
    """Return the first admin's password; production has refused a weak one before this."""
    check_admin_password(settings)
    password = settings.seed.admin_password
    if password is None or settings.seed.admin_password_is_default:
        logger.warning(
            "the first admin gets the documented default password (ADMIN_INITIAL_PASSWORD unset or "
            "default); it must be changed at first login, and production refuses it"
        )
    return password or DEFAULT_ADMIN_PASSWORD


def _ensure_plans(session: Session, plans: Sequence[PlanSpec]) -> tuple[list[str], list[str]]:
    created: list[str] = []
    existing: list[str] = []
    for plan in plans:
        statement = (
            insert(SubscriptionPlan)
            .values(
                code=plan.code,
                name=plan.name,
                price_cents=plan.price_cents,
                currency=plan.currency,
                billing_interval=plan.billing_interval,
                features=list(plan.features),
                limits=plan.limits,
                is_active=plan.is_active,
                sort_order=plan.sort_order,
            )
            .on_conflict_do_nothing(index_elements=["code"])
            .returning(SubscriptionPlan.code)
        )
        (created if session.scalar(statement) is not None else existing).append(plan.code)
    return created, existing
