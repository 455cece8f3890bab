"""Refresh-token rotation with reuse detection (RFC 9700, the OAuth 2.0 Security BCP, 4.14.2).

Each sign-in (register, login, password change) starts a *family*: a row in
``refresh_token_families`` and a ``fam`` claim in every token minted for it. ``/auth/refresh``
exchanges the family's current refresh token for a new access *and* refresh token; the row then
names the new one, so the old one stops working. Presenting a refresh token of the family that
is not its current one is *reuse*: either a thief replays a stolen token after the owner
rotated, or the owner presents theirs after the thief did. The server cannot tell which, so the
whole family is revoked (the thief and the owner both sign in again, the owner with the
password the thief does not have), audited as ``auth.refresh_token_reused``.

No grace period for concurrent refreshes: two refreshes racing with one token are reuse. A
grace would have to hand the racing caller a token too (or the same one again), and that
window is exactly what a thief racing the owner would use; our clients can refresh
single-flight (one refresh in flight per session). See docs/auth.md.

Revoking a family takes effect on two paths: the row (the truth: a refresh is decided on it,
under a row lock, so two concurrent exchanges cannot both win) and, after commit, a Redis key
``FAMILY_DENYLIST_PREFIX + fam`` that the per-request check reads in its one MGET (so the
family's access tokens, and sockets opened with them, are refused at once).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import RefreshTokenFamily, User
from db.session import committed_notes, note_for_commit
from domain import audit
from domain.audit import AuditEventType
from domain.auth.errors import TokenRevoked
from domain.auth.tokens import SignedToken, TokenIssuer, TokenPair, TokenVerifier, VerifiedToken

log = logging.getLogger(__name__)

#: ``note_for_commit`` topic: (family id, seconds to deny it) of every committed revocation.
FAMILY_REVOKED = "refresh_family_revoked"
REUSE = "reuse"
LOGOUT = "logout"


def start(session: Session, issuer: TokenIssuer, user: User, now: datetime) -> TokenPair:
    """A new family for a sign-in, and its first token pair. Commits."""
    family = RefreshTokenFamily(id=uuid.uuid4(), user_id=user.id, created_at=now,
                                rotated_at=now, rotations=0)
    pair = issuer.issue_pair(user, family=family.id)
    family.current_jti = pair.refresh_jti
    session.add(family)
    session.commit()
    return pair


def rotate(session: Session, issuer: TokenIssuer, user: User, token: VerifiedToken,
           now: datetime) -> TokenPair:
    """Exchange the family's current refresh token ``token`` (already verified: signature,
    expiry, denylists, generation) for a new pair of the same family. Commits. Raises
    ``TokenRevoked`` for a revoked family and for reuse, which revokes the family first
    (committed before the error is raised, so it sticks)."""
    if token.family is None:
        # Minted before rotation existed: one exchange starts a family (the caller denylists
        # this token, so it cannot be exchanged twice).
        return start(session, issuer, user, now)
    family = session.scalars(
        select(RefreshTokenFamily).where(RefreshTokenFamily.id == _uuid(token.family))
        .with_for_update()).one_or_none()
    if family is None or family.user_id != user.id or family.revoked_at is not None:
        session.rollback()  # release the row lock
        raise TokenRevoked()
    if family.current_jti != token.jti:
        _revoke(session, family, REUSE, now, issuer.refresh_ttl_s)
        audit.record(session, AuditEventType.REFRESH_TOKEN_REUSED, actor_id=None,
                     subject_id=user.id,
                     details={"family": str(family.id), "rotations": family.rotations})
        session.commit()
        raise TokenRevoked()
    pair = issuer.issue_pair(user, family=family.id)
    family.current_jti = pair.refresh_jti
    family.rotations += 1
    family.rotated_at = now
    session.commit()
    return pair


def end(session: Session, user: User, token: VerifiedToken | SignedToken, now: datetime,
        ttl_s: int) -> bool:
    """Logout: revoke the family ``token`` belongs to, so no refresh token of the session,
    presented or not, works any more. The caller commits. False if it has no (live) family."""
    if token.family is None:
        return False
    family = session.scalars(
        select(RefreshTokenFamily).where(RefreshTokenFamily.id == _uuid(token.family),
                                         RefreshTokenFamily.user_id == user.id)
        .with_for_update()).one_or_none()
    if family is None or family.revoked_at is not None:
        return False
    _revoke(session, family, LOGOUT, now, ttl_s)
    return True


def _revoke(session: Session, family: RefreshTokenFamily, reason: str, now: datetime,
            ttl_s: int) -> None:
    family.revoked_at = now
    family.revoked_reason = reason
    note_for_commit(session, FAMILY_REVOKED, (str(family.id), ttl_s))


def publisher(verifier: TokenVerifier) -> Callable[[Session], None]:
    """``Database.on_commit`` hook: put committed family revocations on the Redis denylist the
    per-request check reads. If Redis is down the requests fail closed anyway; a lost publish
    leaves the family's access tokens alive until they expire (the refresh tokens are refused
    by the row)."""

    def publish(session: Session) -> None:
        for family, ttl_s in committed_notes(session, FAMILY_REVOKED):
            try:
                verifier.revoke_family(family, ttl_s)
            except Exception:
                log.error("could not publish a refresh-family revocation", exc_info=True,
                          extra={"family": family})

    return publish


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
