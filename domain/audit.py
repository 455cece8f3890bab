"""The security audit log: who did what to which account, when, from which request.

Events are added to the caller's session, so they commit (or roll back) with the change they
describe. The request id comes from ``core.context``; the client address from ``client_ip_var``,
which the API layer sets per request (tasks leave it empty). Details never hold secrets or
free-text personal data: ids, field names and reasons only.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from core.context import request_id_var
from db.models import AuditEvent
from db.types import utcnow

client_ip_var: ContextVar[str | None] = ContextVar("client_ip", default=None)


class AuditEventType(StrEnum):
    REGISTERED = "user.registered"
    LOGIN_SUCCEEDED = "auth.login_succeeded"
    LOGIN_FAILED = "auth.login_failed"
    LOGOUT = "auth.logout"
    LOGOUT_ALL = "auth.logout_all"
    PASSWORD_CHANGED = "user.password_changed"
    PROFILE_UPDATED = "user.profile_updated"
    DATA_EXPORTED = "user.data_exported"
    ERASED = "user.erased"
    VERIFICATION_DECIDED = "admin.verification_decided"
    PASSWORD_RESET_REQUESTED = "auth.password_reset_requested"
    PASSWORD_RESET_MAILED = "auth.password_reset_mailed"
    PASSWORD_RESET = "user.password_reset"
    EMAIL_VERIFICATION_SENT = "user.email_verification_sent"
    EMAIL_VERIFIED = "user.email_verified"
    REFRESH_TOKEN_REUSED = "auth.refresh_token_reused"
    TIER_CHANGED = "admin.tier_changed"


def record(
    session: Session,
    event: AuditEventType,
    *,
    actor_id: uuid.UUID | None,
    subject_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one event to the session (the caller commits). ``subject_id`` defaults to the actor:
    most events are someone acting on their own account."""
    row = AuditEvent(
        occurred_at=utcnow(),
        event=str(event),
        actor_id=actor_id,
        subject_id=subject_id if subject_id is not None else actor_id,
        request_id=request_id_var.get(),
        ip_address=client_ip_var.get(),
        details=details or {},
    )
    session.add(row)
    return row
