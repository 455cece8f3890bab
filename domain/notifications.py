"""Notifications: one row per event a person should learn about, written by the task that runs
after the state change, then pushed (docs/realtime.md, "Notifications that are never lost").

Rows are the guarantee: unique per (recipient, event id), so a task that runs twice writes
nothing twice; ``pushed_at`` stays NULL until the push went out, and a beat sweep pushes what
a crash between commit and push left behind. A client catches up over REST (``page_for``) and
marks what it has read (``mark_read``).

Invitations and dispatch offers are written here by their own tasks (``notify_invited``,
``notify_offer``); every other event by the outbox relay through ``domain.realtime.route``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.models import Notification, Order, OrderMatch
from db.pagination import CursorCodec, Page, paginate
from db.queries import matching as match_queries
from db.queries import orders as order_queries
from domain.dispatch import MatchStatus
from domain.projections import public_order_view

ORDER_INVITATION = "order_invitation"
DISPATCH_OFFER = "dispatch_offer"
#: What an invited provider's client shows for an invitation: the spec's "a new order near you".
INVITATION_EVENT = "order:created"
OFFER_EVENT = "dispatch:offered"


@dataclass(frozen=True)
class Delivery:
    """One event for one recipient, before it is stored."""

    recipient_id: uuid.UUID
    event: str
    event_id: str
    kind: str
    order_id: uuid.UUID | None
    payload: dict[str, Any]
    match_id: uuid.UUID | None = None

    def values(self, now: datetime) -> dict[str, Any]:
        return {"id": uuid.uuid4(), "recipient_id": self.recipient_id, "order_id": self.order_id,
                "match_id": self.match_id, "kind": self.kind, "event": self.event,
                "event_id": self.event_id, "payload": self.payload, "created_at": now}


@dataclass(frozen=True, slots=True)
class Written:
    """A notification row as ``record`` wrote it: the columns it set, ``read_at`` None."""

    id: uuid.UUID
    recipient_id: uuid.UUID
    order_id: uuid.UUID | None
    match_id: uuid.UUID | None
    kind: str
    event: str
    event_id: str
    payload: dict[str, Any]
    created_at: datetime
    read_at: None = None


def record(session: Session, deliveries: Sequence[Delivery], now: datetime) -> list[Written]:
    """Store the deliveries not stored yet; returns the rows written now, in delivery order.

    The rows are built from the values just inserted, not read back (a matching pass writes
    hundreds: issue 16); they are what the table holds (no column has a database default)."""
    values = [d.values(now) for d in deliveries]
    inserted = {uuid.UUID(str(i)) for i in match_queries.insert_ignoring_duplicates(
        session, Notification, values, ("recipient_id", "event_id"))}
    return [Written(**v) for v in values if v["id"] in inserted]


def wire(row: Notification | Written) -> dict[str, Any]:
    """A notification as pushed and as listed: the event's own fields (``id`` is the fact's,
    the same for every recipient and replay) plus this row's id and read state."""
    return {"id": row.event_id, "event": row.event,
            "orderId": str(row.order_id) if row.order_id else row.payload.get("orderId"),
            "at": row.created_at.isoformat(), "payload": row.payload,
            "notificationId": str(row.id),
            "readAt": row.read_at.isoformat() if row.read_at else None}


# ------------------------------------------------------------------------ invitations, offers
def _invitation_payload(view: dict[str, Any], match: OrderMatch, event: str
                        ) -> dict[str, Any]:
    # ``view``: the order as the provider sees it through the API (``public_order_view``: no
    # personal data, since notification rows outlive an erasure); the distance is the
    # recipient's own.
    return {
        "event": event, "recipientId": str(match.provider_id), "orderId": str(match.order_id),
        "matchId": str(match.id), "distanceMeters": round(match.distance_m), "rank": match.rank,
        "offerExpiresAt": match.offer_expires_at.isoformat() if match.offer_expires_at
        else None,
        "order": view,
    }


def notify_invited(session: Session, order_id: uuid.UUID, now: datetime
                   ) -> list[Written]:
    """Record an invitation for every open match of a pending order that has none yet.
    Returns the notification rows written now (none the second time); the caller pushes
    them after commit."""
    order = order_queries.find_by_id(session, order_id)
    if order is None or order.status is not OrderStatus.PENDING:
        return []
    return notify_invited_many(session, [order], now)


def notify_invited_many(session: Session, orders: Sequence[Order], now: datetime
                        ) -> list[Written]:
    """``notify_invited`` for pending orders already loaded (a matching pass's batch): one
    read of their open matches, one insert; each order's view is built once."""
    by_id = {o.id: o for o in orders if o.status is OrderStatus.PENDING}
    views = {oid: public_order_view(o) for oid, o in by_id.items()}
    matches = match_queries.find_open_matches(session, list(by_id))
    return record(session, [
        Delivery(m.provider_id, INVITATION_EVENT, f"{ORDER_INVITATION}:{m.order_id}",
                 ORDER_INVITATION, m.order_id,
                 _invitation_payload(views[m.order_id], m, INVITATION_EVENT), m.id)
        for m in matches], now)


def notify_offer(session: Session, match_id: uuid.UUID, now: datetime) -> list[Written]:
    """Record the exclusive-offer notification of an open offer (once)."""
    match = match_queries.find_match(session, match_id)
    if match is None or match.status != MatchStatus.OFFERED:
        return []
    order = order_queries.find_by_id(session, match.order_id)
    if order is None or order.status is not OrderStatus.PENDING:
        return []
    return record(session, [Delivery(
        match.provider_id, OFFER_EVENT, f"{DISPATCH_OFFER}:{order.id}", DISPATCH_OFFER,
        order.id, _invitation_payload(public_order_view(order), match, OFFER_EVENT),
        match.id)], now)


# ------------------------------------------------------------------------------- reading
def page_for(session: Session, user_id: uuid.UUID, codec: CursorCodec, *, limit: int,
             cursor: str | None, unread_only: bool) -> Page[Notification]:
    """The user's notifications, newest first (cursor pagination as ``GET /orders``)."""
    stmt = select(Notification).where(Notification.recipient_id == user_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    return paginate(session, stmt, created_col=Notification.created_at, id_col=Notification.id,
                    codec=codec, limit=limit, cursor=cursor)


def mark_read(session: Session, user_id: uuid.UUID, now: datetime, *,
              ids: Iterable[uuid.UUID] | None) -> int:
    """Mark the user's own notifications read (``ids`` None: all of them). Ids that are not
    the user's, or already read, are skipped. Returns how many were marked now."""
    stmt = (update(Notification)
            .where(Notification.recipient_id == user_id, Notification.read_at.is_(None))
            .values(read_at=now))
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(list(ids)))
    result = session.execute(stmt.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


# ------------------------------------------------------------------------------- pushing
def unpushed(session: Session, older_than: datetime, limit: int) -> list[Notification]:
    """Rows whose push did not happen (a crash between commit and push), oldest first."""
    return list(session.scalars(
        select(Notification)
        .where(Notification.pushed_at.is_(None), Notification.created_at <= older_than)
        .order_by(Notification.created_at, Notification.id).limit(limit)
        .with_for_update(skip_locked=True)))


def mark_pushed(session: Session, ids: Sequence[uuid.UUID], now: datetime) -> None:
    match_queries.mark_notifications_pushed(session, ids, now)


def sweep_cutoff(now: datetime, grace_s: float) -> datetime:
    return now - timedelta(seconds=grace_s)
