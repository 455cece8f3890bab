"""Queries of the jobs that keep orders from hanging (issue 17, ``domain/overdue.py``) and of
the retention jobs. Each finder returns candidate ids only: the command re-checks every order
under its row lock, so a stale candidate is harmless."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from core.enums import OrderStatus, UserRole
from db.models import (
    Notification,
    Order,
    OrderDispatch,
    OrderMatch,
    OutboxMessage,
    ProviderNoShow,
    User,
)
from db.queries.matching import insert_ignoring_duplicates


def find_no_show_candidates(session: Session, now: datetime, window: timedelta,
                            grace: timedelta, limit: int) -> list[uuid.UUID]:
    """Accepted orders past their start (scheduled time, or acceptance + window when there is
    none or it was already past at acceptance) plus the grace."""
    on_time = and_(Order.scheduled_for.is_not(None), Order.scheduled_for >= Order.accepted_at)
    stmt = (select(Order.id).where(
        Order.status == OrderStatus.ACCEPTED, Order.accepted_at.is_not(None),
        or_(and_(on_time, Order.scheduled_for < now - grace),
            and_(~on_time, Order.accepted_at < now - window - grace)))
        .order_by(Order.accepted_at).limit(limit))
    return list(session.scalars(stmt))


def find_overdue_active(session: Session, now: datetime, max_age: timedelta,
                        limit: int) -> list[uuid.UUID]:
    """Active orders started over ``max_age`` ago not yet escalated for it."""
    stmt = (select(Order.id).where(
        Order.status == OrderStatus.ACTIVE, Order.started_at < now - max_age,
        or_(Order.escalation.is_(None), Order.escalation != "active_overdue"))
        .order_by(Order.started_at).limit(limit))
    return list(session.scalars(stmt))


def find_overdue_disputes(session: Session, now: datetime, escalate_after: timedelta,
                          resolve_after: timedelta, limit: int) -> list[uuid.UUID]:
    """Disputes due for escalation (not escalated yet) or for the default resolution."""
    stmt = (select(Order.id).where(
        Order.status == OrderStatus.DISPUTED, Order.disputed_at < now - escalate_after,
        or_(Order.escalation.is_(None), Order.escalation != "dispute_overdue",
            Order.disputed_at < now - resolve_after))
        .order_by(Order.disputed_at).limit(limit))
    return list(session.scalars(stmt))


def record_no_show(session: Session, order: Order, due_at: datetime, now: datetime) -> None:
    """One row per acceptance missed (a second run inserts nothing)."""
    assert order.provider_id is not None and order.accepted_at is not None
    values = {"id": uuid.uuid4(), "order_id": order.id, "provider_id": order.provider_id,
              "accepted_at": order.accepted_at, "due_at": due_at, "recorded_at": now}
    insert_ignoring_duplicates(session, ProviderNoShow, [values],
                               ("order_id", "provider_id", "accepted_at"))


def no_show_count(session: Session, provider_id: uuid.UUID) -> int:
    return int(session.scalar(select(func.count()).select_from(ProviderNoShow).where(
        ProviderNoShow.provider_id == provider_id)) or 0)


def forget_matching(session: Session, order_id: uuid.UUID) -> None:
    """The first round's matches and dispatch of a re-opened order (it is matched afresh)."""
    session.execute(delete(OrderDispatch).where(OrderDispatch.order_id == order_id)
                    .execution_options(synchronize_session=False))
    session.execute(delete(OrderMatch).where(OrderMatch.order_id == order_id)
                    .execution_options(synchronize_session=False))


def admin_ids(session: Session) -> list[uuid.UUID]:
    return list(session.scalars(select(User.id).where(
        User.role == UserRole.ADMIN, User.erased_at.is_(None))))


# ---------------------------------------------------------------------------------- retention
def purge_published_outbox(session: Session, before: datetime) -> int:
    """Outbox rows published before ``before`` (unpublished ones are never touched)."""
    result = session.execute(delete(OutboxMessage).where(
        OutboxMessage.published_at.is_not(None), OutboxMessage.published_at < before)
        .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def purge_notifications(session: Session, read_before: datetime, any_before: datetime) -> int:
    """Read notifications older than ``read_before``; any older than ``any_before``."""
    result = session.execute(delete(Notification).where(or_(
        and_(Notification.read_at.is_not(None), Notification.created_at < read_before),
        Notification.created_at < any_before)).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
