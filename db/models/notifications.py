"""Notification records (what a user was told, once)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base
from db.types import JSONType, UTCDateTime, utcnow


class Notification(Base):
    """One event pushed to one user (an invitation, an offer, an order's transition, a chat
    message...). Unique per (recipient, event_id), so a task that runs twice records it once;
    ``pushed_at`` stays NULL until the push went out (docs/realtime.md)."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("recipient_id", "event_id", name="uq_notifications_event_once"),
        Index("idx_notifications_recipient", "recipient_id", "created_at"),
        Index("idx_notifications_unpushed", "created_at",
              postgresql_where=text("pushed_at IS NULL"), sqlite_where=text("pushed_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    recipient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("live_stream_orders.id", ondelete="CASCADE"))
    match_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("order_matches.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    #: The pushed event's name (``order:accepted``) and the fact's id, shared by every
    #: recipient and every replay of it: what a client de-duplicates on.
    event: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(96))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
