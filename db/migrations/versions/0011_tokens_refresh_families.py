"""Refresh-token families: rotation with reuse detection (issue 15, docs/auth.md).

Revision ID: 0011_tokens
Revises: 0010_recover
Create Date: 2026-12-02

Portable (PostgreSQL and SQLite). Holds token ids only, never a token.
"""

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision = "0011_tokens"
down_revision = "0010_recover"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refresh_token_families",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("current_jti", sa.String(36), nullable=False),
        sa.Column("rotations", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("rotated_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_reason", sa.String(16), nullable=True),
    )
    op.create_index("idx_refresh_families_user", "refresh_token_families", ["user_id"])


def downgrade() -> None:
    op.drop_index("idx_refresh_families_user", table_name="refresh_token_families")
    op.drop_table("refresh_token_families")
