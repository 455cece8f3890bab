"""Initial schema: users, live_stream_orders, order_applications, payment_transactions.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Dialect-aware on purpose: PostgreSQL gets PostGIS, native enums, JSONB, text[] and a generated
geography column with a GiST index; SQLite (standalone mode) gets CHECK-constrained enums, JSON
text and a lat/lon B-tree index that serves the nearby query's bounding box.
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geography

from db.models import LOCATION_POINT_SQL
from db.types import JSONType, StringList, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ENUMS = {
    "user_role_enum": ("creator", "provider", "both", "admin"),
    "verification_enum": ("pending", "verified", "rejected"),
    "order_status_enum": ("pending", "accepted", "active", "completed", "cancelled", "disputed"),
    "application_status_enum": ("pending", "accepted", "rejected", "withdrawn"),
    "payment_status_enum": (
        "pending", "processing", "succeeded", "failed", "cancelled", "refunded",
    ),
}


def _enum(name: str) -> sa.Enum:
    return sa.Enum(*ENUMS[name], name=name)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    if is_pg:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("username", sa.String(50), nullable=False, unique=True),
        sa.Column("email", sa.String(255), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", _enum("user_role_enum"), nullable=False),
        sa.Column("profile", JSONType, nullable=True),
        sa.Column("verification_status", _enum("verification_enum"), nullable=False),
        sa.Column("last_active_at", UTCDateTime(), nullable=True),
        *_timestamps(),
    )
    op.create_index("idx_users_role", "users", ["role"])
    op.create_index("idx_users_verification", "users", ["verification_status"])

    order_columns: list[sa.Column] = [
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("creator_id", sa.Uuid(),
                  sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("provider_id", sa.Uuid(),
                  sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
    ]
    if is_pg:
        order_columns.append(
            sa.Column(
                "location_point",
                Geography("POINT", srid=4326, spatial_index=False),
                sa.Computed(LOCATION_POINT_SQL, persisted=True),
            )
        )
    order_columns += [
        sa.Column("location_address", sa.Text(), nullable=True),
        sa.Column("service_radius", sa.Integer(), nullable=False),
        sa.Column("base_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("payment_intent_id", sa.String(255), nullable=True),
        sa.Column("status", _enum("order_status_enum"), nullable=False),
        sa.Column("scheduled_for", UTCDateTime(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("requirements", JSONType, nullable=True),
        sa.Column("tags", StringList, nullable=True),
        *_timestamps(),
        sa.CheckConstraint("base_amount_minor > 0", name="ck_orders_amount_positive"),
        sa.CheckConstraint("service_radius > 0", name="ck_orders_radius_positive"),
        sa.CheckConstraint("latitude BETWEEN -90 AND 90", name="ck_orders_latitude"),
        sa.CheckConstraint("longitude BETWEEN -180 AND 180", name="ck_orders_longitude"),
    ]
    op.create_table("live_stream_orders", *order_columns)
    op.create_index("idx_orders_creator", "live_stream_orders", ["creator_id"])
    op.create_index("idx_orders_provider", "live_stream_orders", ["provider_id"])
    op.create_index("idx_orders_status", "live_stream_orders", ["status"])
    op.create_index("idx_orders_scheduled", "live_stream_orders", ["scheduled_for"])
    op.create_index("idx_orders_created", "live_stream_orders", ["created_at", "id"])
    if is_pg:
        op.create_index("idx_orders_location", "live_stream_orders", ["location_point"],
                        postgresql_using="gist")
    else:
        op.create_index("idx_orders_lat_lon", "live_stream_orders", ["latitude", "longitude"])

    op.create_table(
        "order_applications",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("order_id", sa.Uuid(),
                  sa.ForeignKey("live_stream_orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("provider_id", sa.Uuid(),
                  sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("application_message", sa.Text(), nullable=True),
        sa.Column("proposed_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("estimated_arrival", UTCDateTime(), nullable=True),
        sa.Column("status", _enum("application_status_enum"), nullable=False),
        *_timestamps(),
        sa.UniqueConstraint("order_id", "provider_id", name="uq_applications_order_provider"),
    )
    op.create_index("idx_applications_order", "order_applications", ["order_id"])
    op.create_index("idx_applications_provider", "order_applications", ["provider_id"])

    op.create_table(
        "payment_transactions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("order_id", sa.Uuid(), sa.ForeignKey("live_stream_orders.id"), nullable=True),
        sa.Column("payer_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("payee_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("stripe_payment_intent_id", sa.String(255), nullable=True, unique=True),
        sa.Column("gross_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("platform_fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("processing_fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("net_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", _enum("payment_status_enum"), nullable=False),
        sa.Column("processed_at", UTCDateTime(), nullable=True),
        sa.Column("settled_at", UTCDateTime(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "gross_amount_minor = platform_fee_minor + processing_fee_minor + net_amount_minor",
            name="ck_payments_split_balances",
        ),
        sa.CheckConstraint(
            "gross_amount_minor >= 0 AND platform_fee_minor >= 0 "
            "AND processing_fee_minor >= 0 AND net_amount_minor >= 0",
            name="ck_payments_non_negative",
        ),
    )
    for name, column in (("order", "order_id"), ("payer", "payer_id"), ("payee", "payee_id"),
                         ("status", "status")):
        op.create_index(f"idx_payments_{name}", "payment_transactions", [column])


def downgrade() -> None:
    for table in ("payment_transactions", "order_applications", "live_stream_orders", "users"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        for name in ENUMS:
            op.execute(f"DROP TYPE IF EXISTS {name}")
