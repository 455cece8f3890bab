"""Order chat: the messages the creator and the assigned provider send each other."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base
from db.types import UTCDateTime, utcnow


class OrderMessage(Base):
    """One chat message on an order.

    Erasing the sender's account scrubs ``body`` (NULL) and sets ``deleted_at``; the row stays,
    so the other party's conversation keeps its shape ("message deleted") and its pages their
    cursors."""

    __tablename__ = "order_messages"
    __table_args__ = (
        # The conversation, newest first: the keyset of db.pagination.
        Index("idx_order_messages_order", "order_id", "created_at", "id"),
        # Export and erasure find a person's messages by sender.
        Index("idx_order_messages_sender", "sender_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_stream_orders.id", ondelete="CASCADE"))
    sender_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
