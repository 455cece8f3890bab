"""Order chat: ``order_messages`` (issue 12, docs/realtime.md "Chat").

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Portable (PostgreSQL and SQLite). ``body`` is nullable because erasing the sender's account
scrubs it and sets ``deleted_at``, keeping the row for the other party.
"""

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_messages",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("order_id", sa.Uuid(),
                  sa.ForeignKey("live_stream_orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sender_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
    )
    op.create_index("idx_order_messages_order", "order_messages",
                    ["order_id", "created_at", "id"])
    op.create_index("idx_order_messages_sender", "order_messages", ["sender_id"])


def downgrade() -> None:
    op.drop_table("order_messages")
