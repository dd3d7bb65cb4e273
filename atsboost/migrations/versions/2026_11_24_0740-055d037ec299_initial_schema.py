"""initial schema: users, subscription plans, subscriptions

The rules live in the database: check constraints on roles, statuses, intervals,
prices and currencies; case-insensitive unique emails; users' subscriptions go
with the user (ON DELETE CASCADE), a plan in use cannot be deleted (RESTRICT);
and a trigger keeps updated_at. The indexes for the common queries come in the
next revision, built concurrently.

Revision ID: 055d037ec299
Revises:
Create Date: 2026-11-24 07:40:40.274838+00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "055d037ec299"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("atsboost",)
depends_on: str | Sequence[str] | None = None

TABLES = ("users", "subscription_plans", "subscriptions")


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), server_default="user", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "email = btrim(email) AND position('@' in email) > 1", name=op.f("ck_users_email")
        ),
        sa.CheckConstraint("role IN ('admin', 'user')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index("uq_users_email_lower", "users", [sa.literal_column("lower(email)")], unique=True)

    op.create_table(
        "subscription_plans",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), server_default="USD", nullable=False),
        sa.Column("billing_interval", sa.String(length=8), nullable=False),
        sa.Column("features", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("limits", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("sort_order", sa.Integer(), server_default=sa.text("0"), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "billing_interval IN ('month', 'year')", name=op.f("ck_subscription_plans_billing_interval")
        ),
        sa.CheckConstraint("code ~ '^[a-z0-9][a-z0-9_-]*$'", name=op.f("ck_subscription_plans_code")),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_subscription_plans_currency")),
        sa.CheckConstraint("jsonb_typeof(features) = 'array'", name=op.f("ck_subscription_plans_features")),
        sa.CheckConstraint("jsonb_typeof(limits) = 'object'", name=op.f("ck_subscription_plans_limits")),
        sa.CheckConstraint("price_cents >= 0", name=op.f("ck_subscription_plans_price_cents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_plans")),
        sa.UniqueConstraint("code", name=op.f("uq_subscription_plans_code")),
    )

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancel_at_period_end", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('trialing', 'active', 'past_due', 'canceled')", name=op.f("ck_subscriptions_status")
        ),
        sa.CheckConstraint("current_period_end > current_period_start", name=op.f("ck_subscriptions_period")),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["subscription_plans.id"],
            name=op.f("fk_subscriptions_plan_id_subscription_plans"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_subscriptions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    # A plan's RESTRICT check on delete looks subscriptions up by plan_id.
    op.create_index("ix_subscriptions_plan_id", "subscriptions", ["plan_id"], unique=False)

    op.execute(
        """
        CREATE FUNCTION atsboost_set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_at := now();
            RETURN NEW;
        END
        $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_set_updated_at BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION atsboost_set_updated_at()"
        )


def downgrade() -> None:
    op.drop_table("subscriptions")
    op.drop_table("subscription_plans")
    op.drop_table("users")
    op.execute("DROP FUNCTION atsboost_set_updated_at()")
