"""Stream sessions and their publishing segments (issue 13, docs/streaming.md).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

Portable (PostgreSQL and SQLite). The stream key is signed, never stored.
"""

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_sessions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("order_id", sa.Uuid(),
                  sa.ForeignKey("live_stream_orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("provider_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("playback_id", sa.String(40), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("last_publish_at", UTCDateTime(), nullable=True),
        sa.Column("last_done_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("published_seconds", sa.Integer(), nullable=False),
        sa.Column("disconnections", sa.Integer(), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=True),
        sa.Column("bitrate_kbps", sa.Integer(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("stats_at", UTCDateTime(), nullable=True),
    )
    op.create_index("idx_stream_sessions_order", "stream_sessions", ["order_id", "created_at"])
    op.create_index("idx_stream_sessions_status", "stream_sessions", ["status"])
    op.create_table(
        "stream_segments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("session_id", sa.Uuid(),
                  sa.ForeignKey("stream_sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
    )
    op.create_index("idx_stream_segments_session", "stream_segments",
                    ["session_id", "started_at"])


def downgrade() -> None:
    op.drop_table("stream_segments")
    op.drop_table("stream_sessions")
