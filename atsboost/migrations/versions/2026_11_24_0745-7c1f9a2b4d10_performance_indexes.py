"""performance indexes for the common queries

Built with CREATE INDEX CONCURRENTLY so that writes go on while they build, each
outside a transaction. A build that failed earlier left an INVALID index behind:
running this revision again rebuilds it.

- login: active users by case-insensitive email, the hash read from the index;
- a user's current subscription (and the user_id foreign key's cascade);
- renewals due: live subscriptions by the end of their period;
- the pricing page: active plans in display order.

Revision ID: 7c1f9a2b4d10
Revises: 055d037ec299
Create Date: 2026-11-24 07:45:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from atsboost.migrations.ops import create_index_concurrently, drop_index_concurrently

revision: str = "7c1f9a2b4d10"
down_revision: str | Sequence[str] | None = "055d037ec299"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_index_concurrently(
        "ix_users_login",
        "users",
        [sa.literal_column("lower(email)")],
        postgresql_include=["password_hash"],
        postgresql_where=sa.text("is_active"),
    )
    create_index_concurrently("ix_subscriptions_user_status", "subscriptions", ["user_id", "status"])
    create_index_concurrently(
        "ix_subscriptions_renewals_due",
        "subscriptions",
        ["current_period_end"],
        postgresql_where=sa.text("status IN ('trialing', 'active') AND NOT cancel_at_period_end"),
    )
    create_index_concurrently(
        "ix_subscription_plans_display",
        "subscription_plans",
        ["sort_order"],
        postgresql_where=sa.text("is_active"),
    )


def downgrade() -> None:
    drop_index_concurrently("ix_subscription_plans_display", "subscription_plans")
    drop_index_concurrently("ix_subscriptions_renewals_due", "subscriptions")
    drop_index_concurrently("ix_subscriptions_user_status", "subscriptions")
    drop_index_concurrently("ix_users_login", "users")
