"""Idempotency-Key records: the first response of a POST, replayed for a retry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base
from db.types import JSONType, UTCDateTime, utcnow


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
