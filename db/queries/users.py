"""User queries: look-ups, the admin list, a user's data for export and erasure, activity."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import cast

from sqlalchemy import Select, Table, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus, OrderStatus, UserRole, VerificationStatus
from db.models import (
    AccountLink,
    AuditEvent,
    EmailMessage,
    Order,
    OrderApplication,
    OrderEvent,
    PaymentTransaction,
    User,
)

#: Orders in these states still bind their participants (see ``open_obligations``).
OPEN_ORDER_STATES = (
    OrderStatus.PENDING, OrderStatus.ACCEPTED, OrderStatus.ACTIVE, OrderStatus.DISPUTED,
)


def find_by_id(session: Session, user_id: uuid.UUID) -> User | None:
    return session.get(User, user_id)


_USERS = cast(Table, User.__table__)
_GENERATION = select(_USERS.c.token_generation).where(
    _USERS.c.id == bindparam("id"), _USERS.c.erased_at.is_(None))
_VERIFICATION = select(_USERS.c.verification_status).where(_USERS.c.id == bindparam("id"))


def find_token_generation(session: Session, user_id: uuid.UUID) -> int | None:
    """The account's current token generation; None if it is gone or erased (one Core
    statement of one column: this backs the per-request token check)."""
    value = session.connection().execute(_GENERATION, {"id": user_id}).scalar_one_or_none()
    return None if value is None else int(value)


def find_verification_status(session: Session, user_id: uuid.UUID) -> VerificationStatus | None:
    status: VerificationStatus | None = session.connection().execute(
        _VERIFICATION, {"id": user_id}).scalar_one_or_none()
    return status


def find_by_email(session: Session, email: str) -> User | None:
    """``email`` must already be normalised (stripped, lower-case), as stored."""
    return session.scalars(select(User).where(User.email == email)).one_or_none()


def find_taken_fields(
    session: Session, *, username: str | None = None, email: str | None = None,
    exclude_id: uuid.UUID | None = None,
) -> list[str]:
    """Which of ``username`` (case-insensitive) and ``email`` another account already uses."""
    taken: list[str] = []
    checks = (
        ("username", username, func.lower(User.username) == (username or "").lower()),
        ("email", email, User.email == email),
    )
    for field, value, condition in checks:
        if value is None:
            continue
        stmt = select(User.id).where(condition)
        if exclude_id is not None:
            stmt = stmt.where(User.id != exclude_id)
        if session.scalars(stmt.limit(1)).first() is not None:
            taken.append(field)
    return taken


def select_users(
    *, role: UserRole | None = None, verification_status: VerificationStatus | None = None
) -> Select[User]:
    """The admin list: live (not erased) accounts, optionally filtered; paginate() orders it."""
    stmt = select(User).where(User.erased_at.is_(None))
    if role is not None:
        stmt = stmt.where(User.role == role)
    if verification_status is not None:
        stmt = stmt.where(User.verification_status == verification_status)
    return stmt


# ----------------------------------------------------------------------- export / erasure


def orders_of(session: Session, user_id: uuid.UUID) -> list[Order]:
    """Orders the user created or was assigned to, oldest first."""
    stmt = select(Order).where(or_(Order.creator_id == user_id, Order.provider_id == user_id))
    return list(session.scalars(stmt.order_by(Order.created_at, Order.id)))


def applications_of(session: Session, user_id: uuid.UUID) -> list[OrderApplication]:
    stmt = select(OrderApplication).where(OrderApplication.provider_id == user_id)
    return list(session.scalars(stmt.order_by(OrderApplication.created_at, OrderApplication.id)))


def payments_of(session: Session, user_id: uuid.UUID) -> list[PaymentTransaction]:
    stmt = select(PaymentTransaction).where(
        or_(PaymentTransaction.payer_id == user_id, PaymentTransaction.payee_id == user_id)
    )
    return list(session.scalars(
        stmt.order_by(PaymentTransaction.created_at, PaymentTransaction.id)
    ))


def audit_events_of(session: Session, user_id: uuid.UUID) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(
        or_(AuditEvent.actor_id == user_id, AuditEvent.subject_id == user_id)
    )
    return list(session.scalars(stmt.order_by(AuditEvent.occurred_at, AuditEvent.id)))


def open_obligations(session: Session, user_id: uuid.UUID) -> dict[str, int]:
    """Counts of what still ties the user to others: open orders (either side) and pending
    applications. Erasure waits until both are zero."""
    open_orders = session.scalar(
        select(func.count()).select_from(Order).where(
            or_(Order.creator_id == user_id, Order.provider_id == user_id),
            Order.status.in_(OPEN_ORDER_STATES),
        )
    )
    pending_applications = session.scalar(
        select(func.count()).select_from(OrderApplication).where(
            OrderApplication.provider_id == user_id,
            OrderApplication.status == ApplicationStatus.PENDING,
        )
    )
    return {"openOrders": int(open_orders or 0),
            "pendingApplications": int(pending_applications or 0)}


def scrub_free_text(session: Session, user_id: uuid.UUID) -> None:
    """Erase what the user wrote in free text on shared records, and their addresses in the
    audit log. The records themselves stay: the counterparty and the ledger need them."""
    session.execute(
        update(Order)
        .where(Order.creator_id == user_id)
        # Bump the optimistic version too, so a concurrent ORM write of the row notices.
        .values(description=None, location_address=None, version=Order.version + 1)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Order)
        .where(Order.creator_id == user_id, Order.dispute_reason.is_not(None))
        .values(dispute_reason="[erased]", version=Order.version + 1)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(OrderApplication)
        .where(OrderApplication.provider_id == user_id)
        .values(application_message=None)
        .execution_options(synchronize_session=False)
    )
    # Reasons this user typed into order histories (cancellations, disputes): the event stays
    # (the counterparty's record of what happened), the words go.
    cancelled_by_user = select(OrderEvent.order_id).where(
        OrderEvent.actor_id == user_id, OrderEvent.event == "order:cancelled")
    session.execute(
        update(Order)
        .where(Order.id.in_(cancelled_by_user))
        .values(cancellation_reason="[erased]", version=Order.version + 1)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(OrderEvent)
        .where(OrderEvent.actor_id == user_id, OrderEvent.reason.is_not(None))
        .values(reason="[erased]")
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(AuditEvent)
        .where(or_(AuditEvent.actor_id == user_id, AuditEvent.subject_id == user_id))
        .values(ip_address=None)
        .execution_options(synchronize_session=False)
    )


# --------------------------------------------------------------------------------- activity


def bump_last_active(session: Session, seen: Mapping[uuid.UUID, datetime]) -> int:
    """Move each user's ``last_active_at`` forward to the given time (never backwards, so an
    old or repeated flush is harmless). ``updated_at`` is left alone on purpose: activity is
    not an edit of the account. Returns the number of rows changed."""
    if not seen:
        return 0
    users = cast(Table, User.__table__)
    stmt = (
        update(users)
        .where(
            users.c.id == bindparam("uid"),
            users.c.erased_at.is_(None),  # an erased account keeps no activity trace
            or_(users.c.last_active_at.is_(None), users.c.last_active_at < bindparam("seen")),
        )
        .values(last_active_at=bindparam("seen"), updated_at=users.c.updated_at)
    )
    params = [{"uid": user_id, "seen": at} for user_id, at in seen.items()]
    result = session.execute(stmt, params)
    return int(getattr(result, "rowcount", 0) or 0)


def order_events_of(session: Session, user_id: uuid.UUID) -> list[OrderEvent]:
    """Order-history entries the user caused (for the GDPR export)."""
    return list(session.scalars(
        select(OrderEvent).where(OrderEvent.actor_id == user_id).order_by(OrderEvent.id)))


def forget_mail(session: Session, user_id: uuid.UUID) -> None:
    """Erasure: the account's mailed links and its mails (addresses, names) go entirely."""
    session.execute(delete(AccountLink).where(AccountLink.user_id == user_id))
    session.execute(delete(EmailMessage).where(EmailMessage.user_id == user_id))
