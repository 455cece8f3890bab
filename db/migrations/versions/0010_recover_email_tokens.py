"""Account recovery (issue 15): verified email addresses, mailed links, the email outbox.

Revision ID: 0010_recover
Revises: 0009
Create Date: 2026-12-02

Portable (PostgreSQL and SQLite). Link secrets are stored only as SHA-256 digests.
"""

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision = "0010_recover"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default) works on SQLite too, so no batch re-create of
    # users (which would lose the expression index uq_users_username_lower).
    op.add_column("users", sa.Column("email_verified_at", UTCDateTime(), nullable=True))
    op.create_table(
        "account_links",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("email", sa.String(255), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
    )
    op.create_index("idx_account_links_user", "account_links", ["user_id", "purpose", "used_at"])
    op.create_table(
        "email_outbox",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("recipient", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sending_at", UTCDateTime(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
    )
    op.create_index("idx_email_outbox_state", "email_outbox", ["state", "created_at"])


def downgrade() -> None:
    op.drop_index("idx_email_outbox_state", table_name="email_outbox")
    op.drop_table("email_outbox")
    op.drop_index("idx_account_links_user", table_name="account_links")
    op.drop_table("account_links")
    op.drop_column("users", "email_verified_at")  # SQLite >= 3.35 drops a column in place
