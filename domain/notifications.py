"""Notifying invited providers: one notification record per (provider, order, kind) and, for
each new record, an outbox event addressed to that provider.

The per-provider event carries ``event: "order:created"`` (what the provider's client shows)
on the outbox topic ``notification:order:created``. It is not published on the topic
``order:created`` itself because that topic's follow-up is ``matching.match_order``: every
invitation would enqueue a (harmless, but wasted) match of the same order.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.models import Notification, Order, OrderMatch
from db.queries import matching as match_queries
from db.queries import orders as order_queries
from domain.dispatch import MatchStatus
from domain.events import emit
from domain.projections import public_order_view

ORDER_INVITATION = "order_invitation"
DISPATCH_OFFER = "dispatch_offer"
PROVIDER_ORDER_CREATED = "notification:order:created"


def _payload(order: Order, match: OrderMatch, event: str) -> dict[str, Any]:
    # The order as the provider sees it through the API (``public_order_view``: no personal
    # data, since notification rows outlive an erasure); the distance is the recipient's own.
    return {
        "event": event, "recipientId": str(match.provider_id), "orderId": str(order.id),
        "matchId": str(match.id), "distanceMeters": round(match.distance_m), "rank": match.rank,
        "offerExpiresAt": match.offer_expires_at.isoformat() if match.offer_expires_at
        else None,
        "order": public_order_view(order),
    }


def notify_invited(session: Session, order_id: uuid.UUID, now: datetime) -> list[uuid.UUID]:
    """Record a notification for every open invitation of a pending order that has none yet,
    and emit ``order:created`` to each of those providers. Returns who was notified now (an
    empty list the second time)."""
    order = order_queries.find_by_id(session, order_id)
    if order is None or order.status is not OrderStatus.PENDING:
        return []
    matches = [m for m in match_queries.find_matches_for_order(session, order.id)
               if m.status in (MatchStatus.INVITED, MatchStatus.OFFERED)]
    rows: list[dict[str, Any]] = [
        {"id": uuid.uuid4(), "recipient_id": m.provider_id, "order_id": order.id,
         "match_id": m.id, "kind": ORDER_INVITATION,
         "payload": _payload(order, m, "order:created"), "created_at": now}
        for m in matches]
    inserted = set(match_queries.insert_ignoring_duplicates(
        session, Notification, rows, ("recipient_id", "order_id", "kind")))
    notified = []
    for row in rows:
        if row["id"] in inserted:
            emit(session, PROVIDER_ORDER_CREATED, str(order.id), row["payload"])
            notified.append(row["recipient_id"])
    session.flush()
    return notified


def notify_offer(session: Session, match_id: uuid.UUID, now: datetime) -> bool:
    """Record the exclusive-offer notification of an open offer (once). The provider's socket
    event is the ``dispatch:offered`` outbox event itself."""
    match = match_queries.find_match(session, match_id)
    if match is None or match.status != MatchStatus.OFFERED:
        return False
    order = order_queries.find_by_id(session, match.order_id)
    if order is None or order.status is not OrderStatus.PENDING:
        return False
    inserted = match_queries.insert_ignoring_duplicates(session, Notification, [{
        "id": uuid.uuid4(), "recipient_id": match.provider_id, "order_id": order.id,
        "match_id": match.id, "kind": DISPATCH_OFFER,
        "payload": _payload(order, match, "dispatch:offered"), "created_at": now,
    }], ("recipient_id", "order_id", "kind"))
    return bool(inserted)
