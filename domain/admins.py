"""Account commands shared by the CLI, the API and the tasks."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import UserRole, VerificationStatus
from db.models import User
from domain.passwords import hash_password


def ensure_admin(
    session: Session, *, email: str, username: str, password: str
) -> tuple[User, bool]:
    """Create the first admin if no admin exists. Returns (admin, created). Safe to run twice."""
    existing = session.scalars(select(User).where(User.role == UserRole.ADMIN).limit(1)).first()
    if existing is not None:
        return existing, False
    admin = User(
        username=username,
        email=email.strip().lower(),
        password_hash=hash_password(password),
        role=UserRole.ADMIN,
        verification_status=VerificationStatus.VERIFIED,
        profile={},
    )
    session.add(admin)
    session.commit()
    return admin, True
