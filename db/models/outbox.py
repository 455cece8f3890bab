"""The transactional outbox: events written with the change that caused them, published after
commit by ``tasks.events.drain_outbox``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base
from db.types import JSONType, UTCDateTime, utcnow


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
