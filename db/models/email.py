"""Account links (password reset, email verification) and the email outbox (migration 0010).

A link's secret is never stored: only its SHA-256 (``domain.account_links``). Mails are written
in the transaction that decides to send them and sent after commit by ``notifications.send_email``
(``domain.email_outbox`` says which delivery guarantee that gives).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base
from db.types import UTCDateTime, utcnow


class AccountLink(Base):
    """One single-use, expiring token mailed to an account's address."""

    __tablename__ = "account_links"
    __table_args__ = (Index("idx_account_links_user", "user_id", "purpose", "used_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))  # password_reset | email_verification
    # The address the link was sent to: a verification proves *this* address, not a later one.
    email: Mapped[str] = mapped_column(String(255))
    secret_sha256: Mapped[str] = mapped_column(String(64))  # hex digest; the secret is mailed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when confirmed, or when a newer link of the same purpose replaced it.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EmailMessage(Base):
    """A mail to send. ``state``: queued -> sending -> sent, or failed."""

    __tablename__ = "email_outbox"
    __table_args__ = (Index("idx_email_outbox_state", "state", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    # Holds the link (its secret) until sent; emptied once sent or given up (see the outbox).
    body: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sending_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
