"""Orders, applications to them, and each order's history of events.

The order location is latitude/longitude (the portable truth) plus, on PostgreSQL only, a
generated ``geography(Point,4326)`` column with a GiST index for the nearby query."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.enums import (
    ApplicationStatus,
    OrderStatus,
)
from db.models.base import Base, TimestampMixin, enum_type
from db.types import JSONType, StringList, UTCDateTime, utcnow

# The generated geography column: derived by PostgreSQL from latitude/longitude so the two can
# never disagree. It is deliberately not mapped on ``Order``: SQLite has no such column, and only
# the geographic queries in ``db.queries.orders`` read it (see the migration).
LOCATION_POINT_SQL = "(ST_SetSRID(ST_MakePoint(longitude, latitude), 4326))::geography"


class Order(TimestampMixin, Base):
    __tablename__ = "live_stream_orders"
    __table_args__ = (
        CheckConstraint("base_amount_minor > 0", name="ck_orders_amount_positive"),
        CheckConstraint("service_radius > 0", name="ck_orders_radius_positive"),
        CheckConstraint("latitude BETWEEN -90 AND 90", name="ck_orders_latitude"),
        CheckConstraint("longitude BETWEEN -180 AND 180", name="ck_orders_longitude"),
        Index("idx_orders_creator", "creator_id"),
        Index("idx_orders_provider", "provider_id"),
        Index("idx_orders_status", "status"),
        Index("idx_orders_scheduled", "scheduled_for"),
        Index("idx_orders_created", "created_at", "id"),
        # idx_orders_location (GiST on location_point) exists on PostgreSQL only and
        # idx_orders_lat_lon (the bounding-box index) on SQLite only: see the migration.
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    creator_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE")
    )
    provider_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    location_address: Mapped[str | None] = mapped_column(Text)
    service_radius: Mapped[int] = mapped_column(Integer, default=1000)
    base_amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[OrderStatus] = mapped_column(
        enum_type(OrderStatus, "order_status_enum"), default=OrderStatus.PENDING
    )
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    requirements: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    tags: Mapped[list[str] | None] = mapped_column(StringList)
    # Lifecycle (migration 0003): optimistic version for concurrent transitions, and the why of
    # the terminal states.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # What the creator agreed to pay the accepted provider (their proposal, else the base amount).
    agreed_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disputed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancellation_reason: Mapped[str | None] = mapped_column(Text)
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    # Issue 17 (migration 0013_hanging): an order a beat job handed to admins, and why
    # (``active_overdue``, ``dispute_overdue``); the job escalates each reason once.
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalation: Mapped[str | None] = mapped_column(String(32))

    # The ORM adds "AND version = :old" to every UPDATE of an order and bumps it: a transition
    # that lost a race fails loudly (StaleDataError) instead of overwriting the winner.
    __mapper_args__ = {"version_id_col": version}


class OrderApplication(TimestampMixin, Base):
    __tablename__ = "order_applications"
    __table_args__ = (
        UniqueConstraint("order_id", "provider_id", name="uq_applications_order_provider"),
        Index("idx_applications_order", "order_id"),
        Index("idx_applications_provider", "provider_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_stream_orders.id", ondelete="CASCADE")
    )
    provider_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE")
    )
    application_message: Mapped[str | None] = mapped_column(Text)
    proposed_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    estimated_arrival: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[ApplicationStatus] = mapped_column(
        enum_type(ApplicationStatus, "application_status_enum"), default=ApplicationStatus.PENDING
    )
    order: Mapped[Order] = relationship(lazy="select")


class OrderEvent(Base):
    """Append-only history: one row per transition (and per creation/edit) of an order."""

    __tablename__ = "order_events"
    __table_args__ = (Index("idx_order_events_order", "order_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_stream_orders.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_role: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProviderNoShow(Base):
    """A provider who accepted an order and never started it (issue 17): counted against
    their completion rate in matching, whatever becomes of the order afterwards (it may be
    re-opened and given to someone else). One row per acceptance: the no-show job may run
    twice."""

    __tablename__ = "provider_no_shows"
    __table_args__ = (
        UniqueConstraint("order_id", "provider_id", "accepted_at", name="uq_no_shows_acceptance"),
        Index("idx_no_shows_provider", "provider_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_stream_orders.id", ondelete="CASCADE"))
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the start it missed, grace included
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
