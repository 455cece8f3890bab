"""Order chat queries: a conversation, a person's messages for export, erasure's scrub."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import Session

from db.models import Notification, Order, OrderMessage, OutboxMessage

#: The outbox topic of a posted message (``domain.messages``).
MESSAGE_CREATED = "message:created"


def select_conversation(order_id: uuid.UUID) -> Select[OrderMessage]:
    """An order's messages, for ``db.pagination.paginate`` (which adds the order)."""
    return select(OrderMessage).where(OrderMessage.order_id == order_id)


def conversations_of(session: Session, user_id: uuid.UUID) -> list[OrderMessage]:
    """Every message of the conversations the user takes part in (as creator or provider)
    and every message they sent, oldest first (for the GDPR export)."""
    their_orders = select(Order.id).where(
        or_(Order.creator_id == user_id, Order.provider_id == user_id))
    stmt = select(OrderMessage).where(or_(OrderMessage.sender_id == user_id,
                                          OrderMessage.order_id.in_(their_orders)))
    return list(session.scalars(stmt.order_by(OrderMessage.created_at, OrderMessage.id)))


def scrub_sent_by(session: Session, user_id: uuid.UUID, now: datetime) -> list[OrderMessage]:
    """Blank the bodies of every message the user sent (the rows stay, marked deleted) and
    return the scrubbed rows as they now are."""
    session.execute(
        update(OrderMessage)
        .where(OrderMessage.sender_id == user_id, OrderMessage.deleted_at.is_(None))
        .values(body=None, deleted_at=now)
        .execution_options(synchronize_session=False)
    )
    # populate_existing: rows already in the session must show the UPDATE, not their past.
    return list(session.scalars(
        select(OrderMessage).where(OrderMessage.sender_id == user_id)
        .execution_options(populate_existing=True)))


def message_events_in(session: Session, order_ids: set[uuid.UUID]) -> list[OutboxMessage]:
    """The ``message:created`` outbox rows of these orders (their aggregate is the order)."""
    if not order_ids:
        return []
    return list(session.scalars(select(OutboxMessage).where(
        OutboxMessage.topic == MESSAGE_CREATED,
        OutboxMessage.aggregate_id.in_([str(order_id) for order_id in order_ids]))))


def message_notifications_in(session: Session, order_ids: set[uuid.UUID]
                             ) -> list[Notification]:
    """The chat notifications (``message:sent``, ``message:received``) of these orders."""
    if not order_ids:
        return []
    return list(session.scalars(select(Notification).where(
        Notification.event.in_(["message:sent", "message:received"]),
        Notification.order_id.in_(list(order_ids)))))
