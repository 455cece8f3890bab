"""Matching: invitations ("order matches"), the batch assignment, auto-dispatch offers.

Statuses are plain strings guarded by CHECK constraints (like ``AuditEvent.event``); their
vocabulary is ``domain.dispatch.MatchStatus`` / ``DispatchStatus``, so a new value is one
migration of a constraint rather than an enum type per dialect."""

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
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base, check_in
from db.types import JSONType, UTCDateTime, utcnow

MATCH_STATUSES = ("invited", "offered", "declined", "expired", "accepted", "closed")


MATCH_SOURCES = ("order_created", "rematch")


DISPATCH_STATUSES = ("offering", "exhausted", "accepted", "stopped")


class OrderMatch(Base):
    """A provider invited to an order, with the rank, score and distance that put them there.

    One row per (order, provider): re-running a match or a re-match never invites twice.
    """

    __tablename__ = "order_matches"
    __table_args__ = (
        UniqueConstraint("order_id", "provider_id", name="uq_order_matches_order_provider"),
        CheckConstraint(check_in("status", MATCH_STATUSES), name="ck_order_matches_status"),
        CheckConstraint(check_in("source", MATCH_SOURCES), name="ck_order_matches_source"),
        Index("idx_order_matches_order", "order_id", "rank"),
        Index("idx_order_matches_provider", "provider_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_stream_orders.id", ondelete="CASCADE"))
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="invited")
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    distance_m: Mapped[float] = mapped_column(Float)
    breakdown: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    index_version: Mapped[int] = mapped_column(BigInteger, default=0)
    offer_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OrderAssignment(Base):
    """The batch re-match's current choice for a pending order (one provider per order and,
    within one run, one order per provider); the next run reports its changes against it."""

    __tablename__ = "order_assignments"
    __table_args__ = (Index("idx_order_assignments_provider", "provider_id"),)

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_stream_orders.id", ondelete="CASCADE"), primary_key=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    distance_m: Mapped[float] = mapped_column(Float)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrderDispatch(Base):
    """Auto-dispatch of one order: who holds the exclusive offer now, and how it went."""

    __tablename__ = "order_dispatches"
    __table_args__ = (
        CheckConstraint(check_in("status", DISPATCH_STATUSES), name="ck_order_dispatches_status"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_stream_orders.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="offering")
    current_match_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("order_matches.id", ondelete="SET NULL"))
    offers_made: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
