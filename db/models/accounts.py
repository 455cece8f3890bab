"""Accounts: users (creators, providers, admins) and their audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Uuid,
    false,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.enums import (
    UserRole,
    VerificationStatus,
)
from db.models.base import Base, TimestampMixin, enum_type
from db.types import JSONType, UTCDateTime, utcnow


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
        enum_type(UserRole, "user_role_enum"), default=UserRole.CREATOR
    )
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    verification_status: Mapped[VerificationStatus] = mapped_column(
        enum_type(VerificationStatus, "verification_enum"),
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
    # When the owner proved the address by following a mailed link (migration 0010); a password
    # reset proves it too. None: not verified.
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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


class RefreshTokenFamily(Base):
    """Every refresh token descended from one sign-in (rotation, docs/auth.md). Refresh tokens
    rotate on each use; the row remembers which one is current, so presenting any earlier one
    is reuse (a stolen token replayed, or the thief's copy racing the owner's) and revokes the
    whole family. The truth is here, not in Redis: it survives a Redis flush, and a refresh is
    rare enough (once per access-token lifetime) to afford a row lock."""

    __tablename__ = "refresh_token_families"
    __table_args__ = (Index("idx_refresh_families_user", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The ``jti`` of the one refresh token of this family that may still be exchanged.
    current_jti: Mapped[str] = mapped_column(String(36))
    rotations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # ``reuse`` (a rotated-out token came back) or ``logout``.
    revoked_reason: Mapped[str | None] = mapped_column(String(16))
