"""Order chat: the creator and the assigned provider write to each other; admins may read.

Framework-free, like every command here: the API calls it today, a socket handler may call it
tomorrow. Commands flush, never commit (the caller's unit of work does), so a message and its
``message:created`` outbox row land together or not at all. The real-time router turns that
row into ``message:sent`` (the sender's sessions) and ``message:received`` (the other party);
nothing here pushes to sockets.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core.enums import OrderStatus
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from db.models import Notification, Order, OrderMessage, OutboxMessage
from db.pagination import CursorCodec, Page, paginate
from db.queries import messages as queries
from db.queries import orders as order_queries
from domain.events import emit
from domain.order_states import Actor
from domain.orders import Party, actor_for, can_view
from domain.projections import message_view

MESSAGE_CREATED = queries.MESSAGE_CREATED

#: Statuses in which a conversation takes new messages (there is an assigned provider, and the
#: order is not cancelled). Completed and disputed orders stay open: that is when the two
#: parties most need to talk. Reading the history is allowed in every status.
CHAT_OPEN_STATES = frozenset({OrderStatus.ACCEPTED, OrderStatus.ACTIVE, OrderStatus.COMPLETED,
                              OrderStatus.DISPUTED})

#: Control characters a message may contain (everything else of Unicode category Cc is
#: refused: NUL, escape sequences, a bare carriage return...).
ALLOWED_CONTROLS = frozenset("\n\t")


def _order_for(session: Session, order_id: uuid.UUID, user: Party, *,
               may_apply: bool) -> tuple[Order, Actor]:
    """The order and the user's part in it.

    404 for whoever may not see the order at all (as ``GET /orders/{id}``: existence is not
    revealed); 403 for one who may see it but takes no part in it (a provider looking at a
    pending order)."""
    order = order_queries.find_by_id(session, order_id)
    if order is None or not can_view(user, order, may_apply=may_apply):
        raise NotFound("Order not found.")
    actor = actor_for(user, order)
    if actor is None:
        raise PermissionDenied("Only the order's creator and its assigned provider may chat.",
                               code="NOT_A_PARTICIPANT")
    return order, actor


def clean_body(text: str, max_chars: int) -> str:
    """The text as stored: stripped, Windows line ends made ``\\n``; 400 if it is empty, too
    long or carries a control character other than newline and tab."""

    def refuse(reason: str) -> ValidationFailed:
        return ValidationFailed("The request is not valid.", details={"body": [reason]})

    body = text.replace("\r\n", "\n").strip()
    if not body:
        raise refuse("Must not be empty.")
    if len(body) > max_chars:
        raise refuse(f"At most {max_chars} characters.")
    for char in body:
        category = unicodedata.category(char)
        # Cs: a lone surrogate (JSON can spell one) is not text and cannot be stored as UTF-8.
        if (category == "Cc" and char not in ALLOWED_CONTROLS) or category == "Cs":
            raise refuse(f"Must not contain control characters (found U+{ord(char):04X}).")
    return body


def history(session: Session, order_id: uuid.UUID, reader: Party, *, may_apply: bool,
            codec: CursorCodec, limit: int, cursor: str | None) -> Page[dict[str, Any]]:
    """One page of the order's conversation, newest first (participants and admins)."""
    _order_for(session, order_id, reader, may_apply=may_apply)
    found = paginate(session, queries.select_conversation(order_id),
                     created_col=OrderMessage.created_at, id_col=OrderMessage.id,
                     codec=codec, limit=limit, cursor=cursor)
    return Page(items=[message_view(message) for message in found.items],
                has_next_page=found.has_next_page, has_previous_page=found.has_previous_page,
                next_cursor=found.next_cursor, previous_cursor=found.previous_cursor,
                total_count=found.total_count)


def post_message(session: Session, order_id: uuid.UUID, sender: Party, text: str, *,
                 max_chars: int, may_apply: bool, now: datetime) -> dict[str, Any]:
    """Post a message as the order's creator or assigned provider, while the chat is open;
    returns its view. Writes the ``message:created`` outbox row in the same transaction."""
    order, actor = _order_for(session, order_id, sender, may_apply=may_apply)
    if actor is Actor.ADMIN:
        raise PermissionDenied("Admins may read an order's chat, not write in it.",
                               code="NOT_A_PARTICIPANT")
    body = clean_body(text, max_chars)
    if order.provider_id is None or order.status not in CHAT_OPEN_STATES:
        raise Conflict("This order's chat takes no messages: it opens when a provider is "
                       "assigned and closes when the order is cancelled.",
                       code="CHAT_CLOSED", details={"status": order.status.value})
    message = OrderMessage(order_id=order.id, sender_id=sender.id, body=body, created_at=now)
    session.add(message)
    session.flush()
    view = message_view(message)
    recipient = order.provider_id if actor is Actor.CREATOR else order.creator_id
    # No "creatorId" in the payload on purpose: domain.events.emit would take it for an order
    # snapshot and drop the order's cached reads, which a message does not change.
    emit(session, MESSAGE_CREATED, str(order.id), {
        "event": MESSAGE_CREATED, "orderId": str(order.id), "senderId": str(sender.id),
        "recipientId": str(recipient), "message": view,
    })
    return view


def erase_sent_by(session: Session, user_id: uuid.UUID, now: datetime) -> None:
    """Account erasure: scrub the bodies of the user's messages (rows stay, shown to the other
    party as deleted) and of the ``message:created`` events that carried them, which the outbox
    keeps."""
    scrubbed = {message.id: message for message in queries.scrub_sent_by(session, user_id, now)}
    if not scrubbed:
        return
    order_ids = {message.order_id for message in scrubbed.values()}
    # The outbox events, and the notifications pushed from them (``message:sent`` and
    # ``message:received``), carried the body too.
    rows: list[OutboxMessage | Notification] = [
        *queries.message_events_in(session, order_ids),
        *queries.message_notifications_in(session, order_ids)]
    for row in rows:
        message_id = row.payload.get("message", {}).get("id")
        scrubbed_message = scrubbed.get(uuid.UUID(message_id)) if message_id else None
        if scrubbed_message is not None:
            # A new dict: the JSON column does not track changes made in place.
            row.payload = {**row.payload, "message": message_view(scrubbed_message)}
    session.flush()
