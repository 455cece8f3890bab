"""Models that carry the order lifecycle: history, the transactional outbox, idempotency records
and operating areas."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from db.models import Base
from db.types import JSONType, UTCDateTime, utcnow


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


class OutboxMessage(Base):
    """An event written in the same transaction as the change it reports.

    The relay (``events.drain_outbox``) publishes it and enqueues its follow-up tasks after
    commit; a crash between commit and publish leaves the row unpublished, and the beat sweep
    publishes it later. Delivery is at-least-once, so consumers are idempotent.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("idx_outbox_unpublished", "published_at", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(64))
    aggregate_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    request_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class IdempotencyRecord(Base):
    """The first successful response to a POST carrying an ``Idempotency-Key``.

    Written in the same transaction as the work itself, so "done" and "remembered" can never
    disagree; a concurrent duplicate loses on the primary key and replays the winner's response.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("idx_idempotency_expires", "expires_at"),)

    scope: Mapped[str] = mapped_column(String(80), primary_key=True)  # user id or client IP
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OperatingArea(Base):
    """A polygon where orders may be posted. With none active, orders are accepted anywhere.

    The GeoJSON ring is the portable truth; PostgreSQL also has a generated ``geography`` column
    (migration 0003) for ``ST_Covers``; SQLite checks the ring in Python.
    """

    __tablename__ = "operating_areas"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    geojson: Mapped[dict[str, Any]] = mapped_column(JSONType)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
