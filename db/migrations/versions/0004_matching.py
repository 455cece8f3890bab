"""Matching: order matches (invitations), batch assignments, auto-dispatch, geofence state,
sampled location history, notifications.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Portable on purpose (PostgreSQL and SQLite): statuses are strings with CHECK constraints, JSON
is JSONB on PostgreSQL and text on SQLite (``JSONType``), the history id is an auto-increment
BIGINT (INTEGER on SQLite, which only auto-increments INTEGER PRIMARY KEY).
"""

import sqlalchemy as sa
from alembic import op

from db.types import JSONType, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MATCH_STATUSES = ("invited", "offered", "declined", "expired", "accepted", "closed")
MATCH_SOURCES = ("order_created", "rematch")
DISPATCH_STATUSES = ("offering", "exhausted", "accepted", "stopped")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _order_fk(**kwargs: object) -> sa.Column:
    return sa.Column("order_id", sa.Uuid(),
                     sa.ForeignKey("live_stream_orders.id", ondelete="CASCADE"),
                     nullable=False, **kwargs)


def _user_fk(name: str) -> sa.Column:
    return sa.Column(name, sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                     nullable=False)


def upgrade() -> None:
    op.create_table(
        "order_matches",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _order_fk(),
        _user_fk("provider_id"),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("distance_m", sa.Float(), nullable=False),
        sa.Column("breakdown", JSONType, nullable=True),
        sa.Column("index_version", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("offer_expires_at", UTCDateTime(), nullable=True),
        sa.Column("responded_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("order_id", "provider_id", name="uq_order_matches_order_provider"),
        sa.CheckConstraint(_in("status", MATCH_STATUSES), name="ck_order_matches_status"),
        sa.CheckConstraint(_in("source", MATCH_SOURCES), name="ck_order_matches_source"),
    )
    op.create_index("idx_order_matches_order", "order_matches", ["order_id", "rank"])
    op.create_index("idx_order_matches_provider", "order_matches", ["provider_id", "status"])

    op.create_table(
        "order_assignments",
        _order_fk(primary_key=True),
        _user_fk("provider_id"),
        sa.Column("distance_m", sa.Float(), nullable=False),
        sa.Column("assigned_at", UTCDateTime(), nullable=False),
    )
    op.create_index("idx_order_assignments_provider", "order_assignments", ["provider_id"])

    op.create_table(
        "order_dispatches",
        _order_fk(primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_match_id", sa.Uuid(),
                  sa.ForeignKey("order_matches.id", ondelete="SET NULL"), nullable=True),
        sa.Column("offers_made", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(_in("status", DISPATCH_STATUSES), name="ck_order_dispatches_status"),
    )

    op.create_table(
        "order_geofence_states",
        _order_fk(primary_key=True),
        _user_fk("provider_id"),
        sa.Column("inside", sa.Boolean(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
    )

    op.create_table(
        "provider_location_samples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        _user_fk("provider_id"),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("idx_location_samples_provider", "provider_location_samples",
                    ["provider_id", "recorded_at"])
    op.create_index("idx_location_samples_recorded", "provider_location_samples",
                    ["recorded_at"])

    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _user_fk("recipient_id"),
        sa.Column("order_id", sa.Uuid(),
                  sa.ForeignKey("live_stream_orders.id", ondelete="CASCADE"), nullable=True),
        sa.Column("match_id", sa.Uuid(),
                  sa.ForeignKey("order_matches.id", ondelete="CASCADE"), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("read_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("recipient_id", "order_id", "kind", name="uq_notifications_once"),
    )
    op.create_index("idx_notifications_recipient", "notifications",
                    ["recipient_id", "created_at"])


def downgrade() -> None:
    for table in ("notifications", "provider_location_samples", "order_geofence_states",
                  "order_dispatches", "order_assignments", "order_matches"):
        op.drop_table(table)
