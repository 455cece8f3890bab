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
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base
from db.types import JSONType, UTCDateTime, utcnow


class Notification(Base):
    """A notification record for one user (an invitation, a dispatch offer, ...). Unique per
    (recipient, order, kind), so a notify task that runs twice records it once."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("recipient_id", "order_id", "kind", name="uq_notifications_once"),
        Index("idx_notifications_recipient", "recipient_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    recipient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("live_stream_orders.id", ondelete="CASCADE"))
    match_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("order_matches.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
