"""Orders that hang (issue 17, docs/orders.md "Automatic steps"): provider no-shows, and the
escalation of overdue orders and disputes to admins.

Revision ID: 0013_hanging
Revises: 0012_payouts
Create Date: 2026-12-02

Portable (PostgreSQL and SQLite).
"""

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision = "0013_hanging"
down_revision = "0012_payouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_no_shows",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("order_id", sa.Uuid(),
                  sa.ForeignKey("live_stream_orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("provider_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("accepted_at", UTCDateTime(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("order_id", "provider_id", "accepted_at",
                            name="uq_no_shows_acceptance"),
    )
    op.create_index("idx_no_shows_provider", "provider_no_shows", ["provider_id"])
    # Plain ADD COLUMN (nullable) on both: a batch would re-create the orders table on SQLite.
    op.add_column("live_stream_orders", sa.Column("escalated_at", UTCDateTime(), nullable=True))
    op.add_column("live_stream_orders", sa.Column("escalation", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("live_stream_orders") as batch:
        batch.drop_column("escalation")
        batch.drop_column("escalated_at")
    op.drop_index("idx_no_shows_provider", table_name="provider_no_shows")
    op.drop_table("provider_no_shows")
