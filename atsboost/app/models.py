"""ORM models: users, subscription plans and subscriptions.

The rules live in the database, not only in Python: check constraints for every
enumerated value and every amount, foreign keys with deliberate ON DELETE
behaviour, case-insensitive unique emails, and ``updated_at`` maintained by a
trigger (see the initial revision). Constraint names follow one convention so
migrations can refer to them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.schema import FetchedValue

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("admin", "user")
BILLING_INTERVALS = ("month", "year")
SUBSCRIPTION_STATUSES = ("trialing", "active", "past_due", "canceled")
LIVE_STATUSES = ("trialing", "active", "past_due")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base whose metadata Alembic compares against the database."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Timestamps:
    """Creation and update times, both set by the server (a trigger keeps updated_at)."""

    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), server_onupdate=FetchedValue(), nullable=False
    )


class User(Timestamps, Base):
    """A person who signs in; admins manage the product."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, server_default="user")
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    must_change_password: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        CheckConstraint(_one_of("role", ROLES), name="role"),
        CheckConstraint("email = btrim(email) AND position('@' in email) > 1", name="email"),
        # Case-insensitive uniqueness: Admin@Example.com and admin@example.com are one user.
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        # Login looks up active users by lower(email) and reads the hash from the index.
        Index(
            "ix_users_login",
            func.lower(text("email")),
            postgresql_include=["password_hash"],
            postgresql_where=text("is_active"),
        ),
    )


class SubscriptionPlan(Timestamps, Base):
    """A plan users subscribe to; ``code`` is its stable identifier."""

    __tablename__ = "subscription_plans"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    price_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False, server_default="USD")
    billing_interval: Mapped[str] = mapped_column(String(8), nullable=False)
    features: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    limits: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    sort_order: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))

    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="price_cents"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency"),
        CheckConstraint(_one_of("billing_interval", BILLING_INTERVALS), name="billing_interval"),
        CheckConstraint("code ~ '^[a-z0-9][a-z0-9_-]*$'", name="code"),
        CheckConstraint("jsonb_typeof(features) = 'array'", name="features"),
        CheckConstraint("jsonb_typeof(limits) = 'object'", name="limits"),
        # The pricing page lists active plans in display order.
        Index("ix_subscription_plans_display", "sort_order", postgresql_where=text("is_active")),
    )


class Subscription(Timestamps, Base):
    """A user's subscription to a plan over a billing period."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # Deleting a user deletes their subscriptions; a plan in use cannot be deleted.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    plan_id: Mapped[int] = mapped_column(
        ForeignKey("subscription_plans.id", ondelete="RESTRICT"), nullable=False
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    current_period_start: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    current_period_end: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))

    user: Mapped[User] = relationship(back_populates="subscriptions")
    plan: Mapped[SubscriptionPlan] = relationship()

    __table_args__ = (
        CheckConstraint(_one_of("status", SUBSCRIPTION_STATUSES), name="status"),
        CheckConstraint("current_period_end > current_period_start", name="period"),
        # A user's current subscription (and the user_id foreign key's cascade).
        Index("ix_subscriptions_user_status", "user_id", "status"),
        # Renewals due: live subscriptions by the end of their period.
        Index(
            "ix_subscriptions_renewals_due",
            "current_period_end",
            postgresql_where=text("status IN ('trialing', 'active') AND NOT cancel_at_period_end"),
        ),
        Index("ix_subscriptions_plan_id", "plan_id"),
    )
