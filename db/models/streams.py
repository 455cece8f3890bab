"""Stream sessions: the live video of an accepted order, as evidence (docs/streaming.md)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base
from db.types import UTCDateTime, utcnow


class StreamSession(Base):
    """One per acceptance of an order: the session whose signed key the provider publishes
    with (the key is not stored), the public playback id, and what the stream did."""

    __tablename__ = "stream_sessions"
    __table_args__ = (
        Index("idx_stream_sessions_order", "order_id", "created_at"),
        Index("idx_stream_sessions_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("live_stream_orders.id", ondelete="CASCADE"))
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: SHA-256 (hex) of the stream key; the key is derived, never stored (domain.stream_sessions).
    playback_id: Mapped[str] = mapped_column(String(40), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_publish_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_seconds: Mapped[int] = mapped_column(Integer, default=0)
    disconnections: Mapped[int] = mapped_column(Integer, default=0)
    bytes_in: Mapped[int | None] = mapped_column(BigInteger)
    bitrate_kbps: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    stats_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StreamSegment(Base):
    """One publishing period of a session: from ``on_publish`` to ``on_publish_done``."""

    __tablename__ = "stream_segments"
    __table_args__ = (Index("idx_stream_segments_session", "session_id", "started_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("stream_sessions.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
