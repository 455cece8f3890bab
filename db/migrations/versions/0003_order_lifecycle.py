"""Order lifecycle: version + reasons on orders, order_events, outbox, idempotency keys,
operating areas.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geography

from db.types import JSONType, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _bigint_pk() -> sa.Column:
    # SQLite only auto-increments INTEGER PRIMARY KEY.
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                     primary_key=True, autoincrement=True)


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("live_stream_orders") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("agreed_amount_minor", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("accepted_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("disputed_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("cancellation_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("dispute_reason", sa.Text(), nullable=True))
    if is_pg:
        # Tag filters use the array containment operator; GIN makes them index scans.
        op.create_index("idx_orders_tags", "live_stream_orders", ["tags"],
                        postgresql_using="gin")

    op.create_table(
        "order_events",
        _bigint_pk(),
        sa.Column("order_id", sa.Uuid(),
                  sa.ForeignKey("live_stream_orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("data", JSONType, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("idx_order_events_order", "order_events", ["order_id", "id"])

    op.create_table(
        "outbox",
        _bigint_pk(),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("aggregate_id", sa.String(64), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("idx_outbox_unpublished", "outbox", ["published_at", "id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(80), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("idx_idempotency_expires", "idempotency_keys", ["expires_at"])

    area_columns: list[sa.Column] = [
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False, unique=True),
        sa.Column("geojson", JSONType, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    ]
    if is_pg:
        area_columns.append(sa.Column(
            "area", Geography("POLYGON", srid=4326, spatial_index=False),
            sa.Computed("(ST_SetSRID(ST_GeomFromGeoJSON(geojson::text), 4326))::geography",
                        persisted=True),
        ))
    op.create_table("operating_areas", *area_columns)
    if is_pg:
        op.create_index("idx_operating_areas_area", "operating_areas", ["area"],
                        postgresql_using="gist")


def downgrade() -> None:
    for table in ("operating_areas", "idempotency_keys", "outbox", "order_events"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("idx_orders_tags", "live_stream_orders")
    with op.batch_alter_table("live_stream_orders") as batch:
        for column in ("dispute_reason", "cancellation_reason", "disputed_at", "accepted_at",
                       "agreed_amount_minor", "version"):
            batch.drop_column(column)
