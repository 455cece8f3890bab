"""Account commands shared by the API and the tasks: register, authenticate, sessions, profile,
password, GDPR export and erasure, provider verification.

Each command takes the session, applies its rule, writes its audit event and commits, so the
change and its audit record land together. Errors are domain exceptions (``core.errors``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from zxcvbn import zxcvbn

from core.enums import UserRole, VerificationStatus
from core.errors import (
    AuthenticationFailed,
    Conflict,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from db.models import User
from db.queries import messages as message_queries
from db.queries import personal_data
from db.queries import users as queries
from db.session import note_for_commit
from db.types import utcnow
from domain import audit, messages, privacy
from domain.audit import AuditEventType
from domain.events import ORDER_VIEW_CHANGED
from domain.passwords import MAX_PASSWORD_BYTES, hash_password, verify_password
from domain.payments.escrow import EscrowState
from domain.permissions import PROVIDER_ROLES, sorted_permissions

#: Roles anyone may pick at registration; admins are only made by an operator (CLI).
SELF_SERVICE_ROLES = frozenset({UserRole.CREATOR, UserRole.PROVIDER, UserRole.BOTH})
# Erased accounts are renamed "deleted-<id>"; nobody may register a look-alike (any case).
ERASED_PREFIX = "deleted-"
_NOT_ERASED = "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in ERASED_PREFIX)
#: The API's schema declares and checks this same pattern (api/blueprints/user_schemas.py).
USERNAME_PATTERN = re.compile(f"^(?!{_NOT_ERASED})[A-Za-z0-9][A-Za-z0-9_.-]{{2,49}}$")
PROFILE_MAX_BYTES = 16_384
INVALID_CREDENTIALS = "The email or password is incorrect."
#: Escrows in these states still move money, so erasure waits for them (settling needs the
#: payee's payout account, a refund the payer's processor customer).
OPEN_ESCROW_STATES = (EscrowState.AWAITING_AUTHORIZATION, EscrowState.AUTHORIZED,
                      EscrowState.CAPTURED, EscrowState.SETTLING)


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int
    min_strength: int  # zxcvbn score 0-4


# ---------------------------------------------------------------------------- validation


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_username(username: str) -> None:
    # fullmatch: "$" alone would let a trailing newline through.
    if not USERNAME_PATTERN.fullmatch(username):
        raise ValidationFailed("The username is not valid.", details={"username": [
            "3-50 letters, digits, '.', '_' or '-', starting with a letter or digit."
        ]})


def check_password(password: str, policy: PasswordPolicy, *, user_inputs: list[str]) -> None:
    """Length, then bcrypt's byte limit, then zxcvbn's guessability estimate (which knows the
    30,000 most common leaked passwords, English words and names, keyboard walks, dates, l33t
    substitutions, and the user's own name and email)."""
    problems: list[str] = []
    if len(password) < policy.min_length:
        problems.append(f"Use at least {policy.min_length} characters.")
    elif len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        problems.append(f"Use at most {MAX_PASSWORD_BYTES} bytes.")
    else:
        result = zxcvbn(password, user_inputs=user_inputs)
        if result["score"] < policy.min_strength:
            feedback = result["feedback"]
            problems.append(feedback["warning"] or "This password is too easy to guess.")
            problems.extend(feedback["suggestions"])
    if problems:
        raise ValidationFailed("The password is too weak.", code="WEAK_PASSWORD",
                               details={"password": problems})


def _context_words(username: str, email: str) -> list[str]:
    return [username, email, email.split("@", 1)[0]]


# --------------------------------------------------------------------------- commands


def register(
    session: Session, *, username: str, email: str, password: str, role: UserRole,
    policy: PasswordPolicy, on_created: Callable[[Session, User], None] | None = None,
) -> User:
    """``on_created(session, user)`` runs in the registration's transaction (the API queues
    the email-verification mail there, so the account and its mail commit together)."""
    email = normalise_email(email)
    if role not in SELF_SERVICE_ROLES:
        raise ValidationFailed("This role cannot be chosen.", details={"role": [
            "Must be one of: " + ", ".join(sorted(SELF_SERVICE_ROLES)) + "."
        ]})
    check_username(username)
    taken = queries.find_taken_fields(session, username=username, email=email)
    if taken:
        raise _already_used(taken)
    check_password(password, policy, user_inputs=_context_words(username, email))
    user = User(
        username=username,
        email=email,
        password_hash=hash_password(password),
        role=role,
        verification_status=VerificationStatus.PENDING,
        profile={},
        is_premium=False,
        token_generation=0,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        session.rollback()
        raise _already_used(["username", "email"]) from exc
    if on_created is not None:
        on_created(session, user)
    audit.record(session, AuditEventType.REGISTERED, actor_id=user.id,
                 details={"role": str(role)})
    session.commit()
    return user


def _already_used(fields: list[str]) -> Conflict:
    return Conflict("An account with this " + " or ".join(fields) + " already exists.",
                    code="ACCOUNT_EXISTS", details={"fields": fields})


_dummy_hash: str | None = None


def _equalise_timing(password: str) -> None:
    """Spend one bcrypt check when there is no account, so response time does not reveal
    whether an email is registered."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(uuid.uuid4().hex)
    verify_password(password, _dummy_hash)


def authenticate(session: Session, *, email: str, password: str) -> User:
    """The user for these credentials, else AuthenticationFailed: the same error, message and
    cost for an unknown email, an erased account and a wrong password."""
    user = queries.find_by_email(session, normalise_email(email))
    if user is None or user.erased_at is not None:
        _equalise_timing(password)
        audit.record(session, AuditEventType.LOGIN_FAILED, actor_id=None,
                     details={"reason": "unknown_account"})
        session.commit()
        raise AuthenticationFailed(INVALID_CREDENTIALS, code="INVALID_CREDENTIALS")
    if not verify_password(password, user.password_hash):
        audit.record(session, AuditEventType.LOGIN_FAILED, actor_id=None, subject_id=user.id,
                     details={"reason": "wrong_password"})
        session.commit()
        raise AuthenticationFailed(INVALID_CREDENTIALS, code="INVALID_CREDENTIALS")
    audit.record(session, AuditEventType.LOGIN_SUCCEEDED, actor_id=user.id)
    session.commit()
    return user


def record_logout(session: Session, user: User, *, revoked_tokens: int) -> None:
    """Audit a single-session logout (the tokens themselves are denied in Redis by the API)."""
    audit.record(session, AuditEventType.LOGOUT, actor_id=user.id,
                 details={"tokens": revoked_tokens})
    session.commit()


#: ``note_for_commit`` topic: (user id, new generation) of every committed revocation.
TOKEN_GENERATION_BUMPED = "token_generation_bumped"


def revoke_tokens(session: Session, user: User) -> None:
    """Every token minted for ``user`` so far stops working once this transaction commits.
    The generation lives on the user row; the API also keeps it in Redis for its per-request
    check, and is told after commit (``domain.auth.generations``)."""
    user.token_generation += 1
    note_for_commit(session, TOKEN_GENERATION_BUMPED, (user.id, user.token_generation))


def revoke_all_sessions(session: Session, user: User) -> None:
    """Logout everywhere: every token minted before now stops working."""
    revoke_tokens(session, user)
    audit.record(session, AuditEventType.LOGOUT_ALL, actor_id=user.id)
    session.commit()


def update_profile(
    session: Session, user: User, *, username: str | None = None,
    profile: dict[str, Any] | None = None,
) -> User:
    changed: list[str] = []
    if username is not None and username != user.username:
        check_username(username)
        if queries.find_taken_fields(session, username=username, exclude_id=user.id):
            raise _already_used(["username"])
        user.username = username
        changed.append("username")
    if profile is not None:
        if len(json.dumps(profile, separators=(",", ":")).encode()) > PROFILE_MAX_BYTES:
            raise ValidationFailed("The profile is too large.", details={"profile": [
                f"At most {PROFILE_MAX_BYTES} bytes of JSON."
            ]})
        user.profile = profile
        changed.append("profile")
    if changed:
        try:
            session.flush()
        except IntegrityError as exc:
            session.rollback()
            raise _already_used(["username"]) from exc
        audit.record(session, AuditEventType.PROFILE_UPDATED, actor_id=user.id,
                     details={"fields": changed})
        session.commit()
    return user


def _require_password(user: User, password: str) -> None:
    if not verify_password(password, user.password_hash):
        raise PermissionDenied("The password is incorrect.", code="INVALID_PASSWORD")


def change_password(
    session: Session, user: User, *, current: str, new: str, policy: PasswordPolicy
) -> User:
    """Set a new password and revoke every existing token (a password change is the answer to
    a leaked password, so the leaked sessions must end too). The caller mints fresh tokens."""
    _require_password(user, current)
    if new == current:
        raise ValidationFailed("The new password must differ from the current one.",
                               code="WEAK_PASSWORD",
                               details={"newPassword": ["Choose a different password."]})
    try:
        check_password(new, policy, user_inputs=_context_words(user.username, user.email))
    except ValidationFailed as exc:
        exc.details = {"newPassword": exc.details["password"]}
        raise
    user.password_hash = hash_password(new)
    revoke_tokens(session, user)
    audit.record(session, AuditEventType.PASSWORD_CHANGED, actor_id=user.id)
    session.commit()
    return user


def reset_password(session: Session, user: User, *, new: str, policy: PasswordPolicy) -> None:
    """Set a password without the current one (the caller has redeemed a reset link, which
    also proves the address) and revoke every token of the account. Same rules as
    registration. The caller commits, together with the link it redeemed."""
    try:
        check_password(new, policy, user_inputs=_context_words(user.username, user.email))
    except ValidationFailed as exc:
        exc.details = {"newPassword": exc.details["password"]}
        raise
    user.password_hash = hash_password(new)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    revoke_tokens(session, user)
    audit.record(session, AuditEventType.PASSWORD_RESET, actor_id=user.id)


# ------------------------------------------------------------------------ GDPR rights


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    return value


def _row(obj: Any, *, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every mapped column of a row, as JSON-ready values (column names as stored)."""
    mapper = inspect(obj).mapper
    return {attr.key: _plain(getattr(obj, attr.key))
            for attr in mapper.column_attrs if attr.key not in exclude}


def export_data(session: Session, user: User) -> dict[str, Any]:
    """Everything stored about the user (GDPR art. 15/20), as one JSON document: a section per
    kind of record (``domain.privacy.TABLES`` says which tables hold the person's data)."""
    audit.record(session, AuditEventType.DATA_EXPORTED, actor_id=user.id)
    session.commit()
    uid = user.id
    streams = personal_data.stream_sessions_of(session, uid)
    return {
        "exportedAt": utcnow().isoformat(),
        "user": _row(user, exclude=frozenset({"password_hash"})),
        "permissions": sorted_permissions(user.role),
        "orders": [_row(o) for o in queries.orders_of(session, uid)],
        "applications": [_row(a) for a in queries.applications_of(session, uid)],
        # The other side's processor references are theirs, not the user's (domain.privacy).
        "payments": [_row(p, exclude=privacy.counterparty_references(
            "payment_transactions", p.payer_id, uid)) for p in queries.payments_of(session, uid)],
        "paymentEscrows": [_row(e, exclude=privacy.counterparty_references(
            "payment_escrows", e.payer_id, uid))
            for e in personal_data.escrows_of(session, uid)],
        "paymentCustomers": [_row(c) for c in personal_data.payment_customers_of(session, uid)],
        "paymentMethods": [_row(m) for m in personal_data.payment_methods_of(session, uid)],
        "payoutAccounts": [_row(a) for a in personal_data.payout_accounts_of(session, uid)],
        "locationHistory": [_row(s) for s in personal_data.location_history_of(session, uid)],
        "geofenceStates": [_row(g) for g in personal_data.geofence_states_of(session, uid)],
        "notifications": [_row(n) for n in personal_data.notifications_of(session, uid)],
        "matches": [_row(m) for m in personal_data.matches_of(session, uid)],
        "assignments": [_row(a) for a in personal_data.assignments_of(session, uid)],
        "streamSessions": [_row(s) for s in streams],
        "streamSegments": [_row(s) for s in personal_data.stream_segments_of(
            session, (s.id for s in streams))],
        "idempotencyRecords": [
            _row(r, exclude=frozenset({"request_hash", "response_body"}))
            for r in personal_data.idempotency_records_of(session, uid)],
        # Sign-ins (refresh-token families): when, how often refreshed, how they ended.
        "refreshTokenFamilies": [
            _row(f, exclude=frozenset({"current_jti"}))
            for f in personal_data.refresh_families_of(session, uid)],
        # Acceptances the provider did not show up for (they lower their ranking).
        "noShows": [_row(n) for n in personal_data.no_shows_of(session, uid)],
        "auditEvents": [_row(e) for e in queries.audit_events_of(session, uid)],
        "orderEvents": [_row(e) for e in queries.order_events_of(session, uid)],
        # The conversations the user takes part in (what the chat shows them), both sides.
        "messages": [_row(m) for m in message_queries.conversations_of(session, uid)],
        "notes": {
            "password": "Stored only as a salted bcrypt hash, which is not exported.",
            "lastActiveAt": "Recorded at most a minute late (activity is batched).",
            "streamKeys": "Stream keys are derived when needed and never stored: the stream "
                          "sessions list what the streams did, not their keys.",
            "idempotencyRecords": "The responses remembered for retried requests are copies "
                                  "of records exported in the other sections.",
            "livePosition": "The latest position of an available provider is held in memory "
                            "for minutes only; the sampled history is locationHistory.",
        },
    }


def erase(session: Session, user: User, *, password: str) -> None:
    """Erase the user's personal data (GDPR art. 17) and end every session.

    Table by table as ``domain.privacy.TABLES`` says: what is the person's alone is deleted;
    what a counterparty or the law still needs (orders, messages, payments, the ledger) stays
    with its personal text removed. The user row stays, anonymised, because those records
    point at it. Refused while orders or applications are still open, money is still moving or
    an auto-dispatch offer is held: others depend on them, so they must be finished, cancelled
    or declined first.
    """
    _require_password(user, password)
    obligations = queries.open_obligations(session, user.id)
    obligations["unsettledPayments"] = personal_data.unsettled_payments(
        session, user.id, OPEN_ESCROW_STATES)
    obligations["openOffers"] = personal_data.open_offers(session, user.id)
    if any(obligations.values()):
        raise Conflict("Finish or cancel your open orders and applications first.",
                       code="ERASURE_BLOCKED", details=obligations)
    placeholder = f"{ERASED_PREFIX}{user.id.hex}"
    now = utcnow()
    user.username = placeholder
    user.email = f"{placeholder}@erased.invalid"  # RFC 2606: can never be a real address
    user.password_hash = "!erased"  # not a bcrypt hash: no password can ever match it
    user.profile = {}
    user.verification_reason = None
    user.last_active_at = None
    user.is_premium = False
    user.email_verified_at = None
    user.erased_at = now
    revoke_tokens(session, user)
    audit.record(session, AuditEventType.ERASED, actor_id=user.id)
    session.flush()
    queries.scrub_free_text(session, user.id)  # after the event above, so it loses its IP too
    queries.forget_mail(session, user.id)
    personal_data.pseudonymise_orders(session, user.id)
    privacy.scrub_order_copies(session, user.id)
    personal_data.forget_processor_refs(session, user.id)
    messages.erase_sent_by(session, user.id, now)
    # After the chat scrub, which rewrites the notifications that carried the bodies.
    personal_data.delete_owned(session, user.id)
    # The scrub rewrites orders the API may hold cached for their counterparties.
    note_for_commit(session, ORDER_VIEW_CHANGED, ("*",))
    session.commit()


# ------------------------------------------------------------------------ verification


def decide_verification(
    session: Session, admin: User, target_id: uuid.UUID, *, status: VerificationStatus,
    reason: str | None,
) -> User:
    """An admin verifies or rejects a provider. A rejection must say why (the provider sees it)."""
    if status not in (VerificationStatus.VERIFIED, VerificationStatus.REJECTED):
        raise ValidationFailed("Decide verified or rejected.",
                               details={"status": ["Must be verified or rejected."]})
    if status == VerificationStatus.REJECTED and not (reason and reason.strip()):
        raise ValidationFailed("A rejection needs a reason.",
                               details={"reason": ["Required when rejecting."]})
    target = queries.find_by_id(session, target_id)
    if target is None or target.erased_at is not None:
        raise NotFound("No such user.")
    if target.role not in PROVIDER_ROLES:
        raise Conflict("Only providers are verified.", code="NOT_A_PROVIDER",
                       details={"role": str(target.role)})
    previous = target.verification_status
    target.verification_status = status
    target.verification_reason = reason.strip() if reason else None
    target.verification_decided_at = utcnow()
    audit.record(session, AuditEventType.VERIFICATION_DECIDED, actor_id=admin.id,
                 subject_id=target.id,
                 details={"status": str(status), "previous": str(previous)})
    session.commit()
    return target
