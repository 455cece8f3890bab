"""SQLAlchemy 2.0 typed models for the spec's seed schema, with our corrections.

Corrections to the spec: money is integer minor units plus an ISO-4217 currency; timestamps are
timezone-aware UTC; the order location is latitude/longitude (the portable truth) plus, on
PostgreSQL only, a generated ``geography(Point,4326)`` column with a GiST index for the
nearby query. The migration, not ``create_all``, is the source of the schema.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db.types import JSONType, StringList, UTCDateTime, enum_values, utcnow
from domain.enums import (
    ApplicationStatus,
    OrderStatus,
    PaymentStatus,
    UserRole,
    VerificationStatus,
)

# The generated geography column: derived by PostgreSQL from latitude/longitude so the two can
# never disagree. It is deliberately not mapped on ``Order``: SQLite has no such column, and only
# the geographic queries in ``db.queries.orders`` read it (see the migration).
LOCATION_POINT_SQL = "(ST_SetSRID(ST_MakePoint(longitude, latitude), 4326))::geography"


class Base(DeclarativeBase):
    pass


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # onupdate fires for ORM flushes and Core update() statements alike.
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


def _enum(cls: Any, name: str) -> Enum:
    return Enum(cls, name=name, values_callable=enum_values, validate_strings=True)


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("idx_users_role", "role"),
        Index("idx_users_verification", "verification_status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(50), unique=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[UserRole] = mapped_column(
        _enum(UserRole, "user_role_enum"), default=UserRole.CREATOR
    )
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    verification_status: Mapped[VerificationStatus] = mapped_column(
        _enum(VerificationStatus, "verification_enum"),
        default=VerificationStatus.PENDING,
    )
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Accounts (migration 0002). Premium raises the rate limit tier; it is set by billing or an
    # operator, never by the user (the profile JSON is user-editable, so it cannot live there).
    is_premium: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Bumped to revoke every token of the user at once (logout-all, password change, erasure):
    # tokens carry the generation they were minted in and older ones are refused.
    token_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verification_reason: Mapped[str | None] = mapped_column(String(500))
    verification_decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# Usernames are unique regardless of case ("Alice" and "alice" are the same person).
Index("uq_users_username_lower", func.lower(User.username), unique=True)


class AuditEvent(Base):
    """One security event (login, failed login, logout, verification decision, erasure...).

    ``event`` is a plain string, not a database enum, so a new kind of event needs no migration;
    the vocabulary is ``domain.audit.AuditEventType``.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("idx_audit_actor", "actor_id", "occurred_at"),
        Index("idx_audit_subject", "subject_id", "occurred_at"),
        Index("idx_audit_event", "event", "occurred_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    event: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    subject_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    request_id: Mapped[str | None] = mapped_column(String(128))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


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
        _enum(OrderStatus, "order_status_enum"), default=OrderStatus.PENDING
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
        _enum(ApplicationStatus, "application_status_enum"), default=ApplicationStatus.PENDING
    )
    order: Mapped[Order] = relationship(lazy="select")


class PaymentTransaction(TimestampMixin, Base):
    __tablename__ = "payment_transactions"
    __table_args__ = (
        # The fee split must add up to the cent: enforced by the database, not only by code.
        CheckConstraint(
            "gross_amount_minor = platform_fee_minor + processing_fee_minor + net_amount_minor",
            name="ck_payments_split_balances",
        ),
        CheckConstraint(
            "gross_amount_minor >= 0 AND platform_fee_minor >= 0 "
            "AND processing_fee_minor >= 0 AND net_amount_minor >= 0",
            name="ck_payments_non_negative",
        ),
        Index("idx_payments_order", "order_id"),
        Index("idx_payments_payer", "payer_id"),
        Index("idx_payments_payee", "payee_id"),
        Index("idx_payments_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("live_stream_orders.id")
    )
    payer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    payee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    gross_amount_minor: Mapped[int] = mapped_column(BigInteger)
    platform_fee_minor: Mapped[int] = mapped_column(BigInteger)
    processing_fee_minor: Mapped[int] = mapped_column(BigInteger)
    net_amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(
        _enum(PaymentStatus, "payment_status_enum"), default=PaymentStatus.PENDING
    )
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
