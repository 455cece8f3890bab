"""Set-based clean-up statements run by the maintenance beat jobs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from db.models import IdempotencyRecord


def purge_expired_idempotency_keys(session: Session, now: datetime) -> int:
    """Delete idempotency records past their expiry (indexed on expires_at)."""
    result = session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now)
        .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
