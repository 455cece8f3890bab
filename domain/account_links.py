"""Links mailed to an account's address: password reset and email verification.

A link carries ``<link id>.<secret>``: the id finds the row, the secret proves possession. Only
the secret's SHA-256 is stored (a secret of 256 random bits needs no slow hash: nobody can
guess it, and a leaked table gives no usable link), compared in constant time. Links are single
use, expire (``PASSWORD_RESET_TTL_S``, ``EMAIL_VERIFICATION_TTL_S``), and a new link of one
purpose replaces the account's older ones. The mail is queued in the same transaction
(``domain.email_outbox``) and sent after commit.

Nothing here tells a stranger whether an address has an account: the API accepts a reset
request without looking the address up (same answer, same work, same time) and a worker mails
the link if there is an account; the mail itself is the only difference, and only the
address's owner sees it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import Conflict, ValidationFailed
from db.models import AccountLink, User
from db.queries import users as user_queries
from db.session import note_for_commit
from db.types import utcnow
from domain import audit, email_outbox, users
from domain.audit import AuditEventType

PASSWORD_RESET = "password_reset"
EMAIL_VERIFICATION = "email_verification"
#: ``note_for_commit`` topic: the (normalised) addresses of committed reset requests.
RESET_REQUESTED = "password_reset_requested"
SECRET_BYTES = 32
_MAX_TOKEN_CHARS = 200
# Compared against when the link id names no row, so every wrong token costs the same.
_NO_DIGEST = hashlib.sha256(b"no such link").hexdigest()


@dataclass(frozen=True)
class LinkConfig:
    public_url: str
    reset_path: str
    verification_path: str
    reset_ttl_s: int
    verification_ttl_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkConfig:
        return cls(settings.app_public_url.rstrip("/"), settings.password_reset_path,
                   settings.email_verification_path, settings.password_reset_ttl_s,
                   settings.email_verification_ttl_s)

    def url(self, path: str, token: str) -> str:
        return self.public_url + path.replace("{token}", token)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _mint(session: Session, user: User, purpose: str, ttl_s: int) -> str:
    """A new link for ``user`` (older unused ones of the purpose are retired); the token."""
    now = utcnow()
    session.execute(update(AccountLink).where(
        AccountLink.user_id == user.id, AccountLink.purpose == purpose,
        AccountLink.used_at.is_(None)).values(used_at=now))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    link = AccountLink(id=uuid.uuid4(), user_id=user.id, purpose=purpose, email=user.email,
                       secret_sha256=_digest(secret), created_at=now,
                       expires_at=now + timedelta(seconds=ttl_s))
    session.add(link)
    return f"{link.id.hex}.{secret}"


def _link_error(code: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, details={"token": [message]})


def _invalid() -> ValidationFailed:
    return _link_error("LINK_INVALID", "This link is not valid. Request a new one.")


def _redeem(session: Session, token: str, purpose: str) -> tuple[AccountLink, User]:
    """The link ``token`` names, locked, and its account, if it may be used now; else a 400.
    Only a token with the right secret learns that its link was used or has expired."""
    link_hex, _, secret = token.partition(".")
    try:
        link_id = uuid.UUID(hex=link_hex) if len(token) <= _MAX_TOKEN_CHARS else None
    except ValueError:
        link_id = None
    link = session.get(AccountLink, link_id, with_for_update=True) if link_id else None
    matches = hmac.compare_digest(link.secret_sha256 if link else _NO_DIGEST, _digest(secret))
    if link is None or not matches or link.purpose != purpose:
        raise _invalid()
    if link.used_at is not None:
        raise _link_error("LINK_USED", "This link has already been used. Request a new one.")
    if utcnow() >= link.expires_at:
        raise _link_error("LINK_EXPIRED", "This link has expired. Request a new one.")
    user = session.get(User, link.user_id)
    # The address changed (or the account was erased) since the mail: it proves nothing now.
    if user is None or user.erased_at is not None or user.email != link.email:
        raise _invalid()
    return link, user


# ------------------------------------------------------------------------ password reset


def request_password_reset(session: Session, email: str) -> None:
    """Accept a reset request. Deliberately blind: the account is not even looked up here, so
    the answer, its body and its timing are the same whether or not the address has one
    (one audited commit, then ``mail_password_reset`` runs on a worker after commit)."""
    audit.record(session, AuditEventType.PASSWORD_RESET_REQUESTED, actor_id=None)
    note_for_commit(session, RESET_REQUESTED, users.normalise_email(email))
    session.commit()


def mail_password_reset(session: Session, email: str, config: LinkConfig) -> bool:
    """The worker's half: mail a reset link if ``email`` has an account (the caller commits).
    False: no account, nothing sent, and nobody is told."""
    user = user_queries.find_by_email(session, users.normalise_email(email))
    if user is None or user.erased_at is not None:
        return False
    token = _mint(session, user, PASSWORD_RESET, config.reset_ttl_s)
    minutes = config.reset_ttl_s // 60
    email_outbox.queue(
        session, user_id=user.id, kind=PASSWORD_RESET, recipient=user.email,
        subject="Reset your TapLive password",
        body=(f"Hello {user.username},\n\n"
              "Someone (hopefully you) asked to reset the password of your TapLive account.\n"
              f"Choose a new password here within {minutes} minutes:\n\n"
              f"{config.url(config.reset_path, token)}\n\n"
              "The link works once. Setting a new password signs you out everywhere.\n"
              "If you did not ask for this, ignore this mail: your password stays as it is.\n"))
    audit.record(session, AuditEventType.PASSWORD_RESET_MAILED, actor_id=None,
                 subject_id=user.id)
    return True


def confirm_password_reset(session: Session, token: str, new_password: str,
                           policy: users.PasswordPolicy) -> User:
    """Set the new password (registration's rules) and end every session of the account. A
    weak password leaves the link usable, so the person can try a stronger one."""
    link, user = _redeem(session, token, PASSWORD_RESET)
    users.reset_password(session, user, new=new_password, policy=policy)
    link.used_at = utcnow()
    session.commit()
    return user


# -------------------------------------------------------------------- email verification


def start_email_verification(session: Session, user: User, config: LinkConfig) -> None:
    """Queue a verification mail in the caller's transaction (registration, or a request)."""
    if user.email_verified_at is not None:
        raise Conflict("This email address is already verified.",
                       code="EMAIL_ALREADY_VERIFIED")
    token = _mint(session, user, EMAIL_VERIFICATION, config.verification_ttl_s)
    hours = config.verification_ttl_s // 3600
    email_outbox.queue(
        session, user_id=user.id, kind=EMAIL_VERIFICATION, recipient=user.email,
        subject="Confirm your email address for TapLive",
        body=(f"Hello {user.username},\n\n"
              "Confirm that this address is yours by opening this link "
              f"within {hours} hours:\n\n"
              f"{config.url(config.verification_path, token)}\n\n"
              "If you did not create a TapLive account, ignore this mail.\n"))
    audit.record(session, AuditEventType.EMAIL_VERIFICATION_SENT, actor_id=user.id)


def request_email_verification(session: Session, user: User, config: LinkConfig) -> None:
    """A new verification mail (the old link stops working)."""
    start_email_verification(session, user, config)
    session.commit()


def confirm_email_verification(session: Session, token: str) -> User:
    link, user = _redeem(session, token, EMAIL_VERIFICATION)
    now = utcnow()
    link.used_at = now
    user.email_verified_at = now
    audit.record(session, AuditEventType.EMAIL_VERIFIED, actor_id=user.id)
    session.commit()
    return user
