"""Rate-limit tiers an operator grants (the spec's premium tier; docs/auth.md "Premium").

The tier is ``users.is_premium``. Tokens carry it (the ``premium`` claim) so the limiter needs
no database read per request; a change therefore reaches the limiter with the user's next
access token, at the latest one access-token lifetime later (``/auth/refresh`` mints from the
row). It is not user-editable, and every change is audited with the admin as actor.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy.orm import Session

from core.errors import NotFound
from db.models import User
from db.queries import users as queries
from domain import audit
from domain.audit import AuditEventType


class Tier(StrEnum):
    STANDARD = "standard"
    PREMIUM = "premium"


def tier_of(user: User) -> Tier:
    return Tier.PREMIUM if user.is_premium else Tier.STANDARD


def set_tier(session: Session, admin: User, target_id: uuid.UUID, tier: Tier) -> User:
    """An admin sets an account's rate-limit tier. Commits, with its audit event."""
    target = queries.find_by_id(session, target_id)
    if target is None or target.erased_at is not None:
        raise NotFound("No such user.")
    previous = tier_of(target)
    target.is_premium = tier is Tier.PREMIUM
    audit.record(session, AuditEventType.TIER_CHANGED, actor_id=admin.id, subject_id=target.id,
                 details={"tier": str(tier), "previous": str(previous)})
    session.commit()
    return target
