"""Who learns of each committed event: the routing table of the real-time layer.

The outbox relay hands every committed event to ``route``; the answer is the durable
deliveries (one notification row per recipient, pushed to ``user:<id>``) and the live-only
emits (to ``order:<id>:invited``: invited providers who joined see that the order they were
invited to changed or is gone, without a stored notification each). docs/realtime.md has the
table in prose; ``tests/domain/test_realtime_routing.py`` pins it.

Privacy: payloads are the outbox's, which carry ``public_order_view`` (no personal data) and,
for geofence events, a rounded distance, never coordinates. Exact positions are sent only live
(``location_updated``), to the order room, and only while ``may_see_exact`` allows it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.notifier import Notifier, invited_room, order_room, user_room
from db.models import Order, OrderMatch
from db.queries.overdue import admin_ids
from domain.dispatch import MatchStatus
from domain.notifications import Delivery
from domain.orders import Parties
from matching.index import ProviderIndex

#: Order transitions every participant (creator, assigned provider) is told about.
ORDER_EVENTS = frozenset({
    "order:created", "order:updated", "order:matched", "order:accepted", "order:started",
    "order:completed", "order:cancelled", "order:expired", "order:disputed", "order:resolved",
    "order:deleted", "order:acceptance_lapsed", "order:reopened",
})
#: Escalations of orders nobody ended (issue 17, ``domain.overdue``): told to every admin.
ADMIN_EVENTS = frozenset({"order:escalated"})
#: Of those, what an invited provider needs to know about the invitation they hold.
INVITATION_EVENTS = frozenset({
    "order:updated", "order:accepted", "order:cancelled", "order:expired", "order:deleted",
})
#: After these an order has no tracked provider any more: its rooms are closed, so nobody who
#: joined before keeps receiving what is sent there (a live position above all).
ROOM_CLOSING = frozenset({
    "order:completed", "order:cancelled", "order:expired", "order:deleted", "order:resolved",
    "order:acceptance_lapsed",
})
#: Events whose rows are written by their own tasks (``domain.notifications``), not here.
SELF_NOTIFYING = frozenset({"dispatch:offered", "notification:order:created"})
#: A payment step the provider is told about too (their money); the rest is the payer's.
PROVIDER_PAYMENT_STAGES = frozenset({"captured", "settled"})
#: Topic names the chat uses: one stored message, two events.
MESSAGE_CREATED = "message:created"


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    topic: str
    aggregate_id: str
    payload: Mapping[str, Any]
    created_at: datetime

    @property
    def event_id(self) -> str:
        return f"evt_{self.id}"

    def wire(self, event: str | None = None) -> dict[str, Any]:
        """The event as pushed to a live room (durable pushes use ``notifications.wire``)."""
        return {"id": self.event_id, "event": event or self.topic,
                "orderId": self.payload.get("orderId"), "at": self.created_at.isoformat(),
                "payload": dict(self.payload)}


@dataclass
class Routes:
    deliveries: list[Delivery] = field(default_factory=list)
    live: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)  # event, data, room
    closed_rooms: list[str] = field(default_factory=list)


def route(session: Session, event: OutboxEvent) -> Routes:
    """The deliveries and live emits of one committed event (reads the order's participants
    from the database only when the payload does not name them)."""
    routes = Routes()
    topic, payload = event.topic, event.payload
    if topic in SELF_NOTIFYING:
        return routes
    order_id = _uuid(payload.get("orderId"))

    def tell(recipient: object, name: str = topic, kind: str | None = None) -> None:
        rid = _uuid(recipient)
        if rid is not None and all(d.recipient_id != rid or d.event != name
                                   for d in routes.deliveries):
            routes.deliveries.append(Delivery(
                rid, name, event.event_id if name == topic else f"{event.event_id}:{name}",
                kind or name, order_id, dict(payload)))

    if topic in ADMIN_EVENTS:
        for admin_id in admin_ids(session):
            tell(admin_id)
        return routes
    if topic == MESSAGE_CREATED:
        tell(payload.get("senderId"), "message:sent")
        tell(payload.get("recipientId"), "message:received")
        return routes
    if topic in ORDER_EVENTS:
        tell(payload.get("creatorId"))
        tell(payload.get("providerId"))
        if topic in INVITATION_EVENTS and order_id is not None:
            routes.live.append((topic, event.wire(), invited_room(order_id)))
        if topic in ROOM_CLOSING and order_id is not None:
            routes.closed_rooms += [order_room(order_id), invited_room(order_id)]
        elif topic == "order:accepted" and order_id is not None:
            # Taken: the invitation room has said so (above) and has nothing more to hear.
            routes.closed_rooms.append(invited_room(order_id))
        return routes
    if topic.startswith("payment:"):
        tell(payload.get("creatorId"))
        if topic == "payment:completed" and payload.get("stage") in PROVIDER_PAYMENT_STAGES:
            tell(payload.get("providerId"))
        return routes
    if topic.startswith(("location:geofence_", "stream:")):
        tell(payload.get("creatorId"))
        tell(payload.get("providerId"))
        return routes
    if topic.startswith("application:") or topic == "invitation:declined":
        creator = payload.get("creatorId") or _creator_of(session, order_id)
        tell(creator)
        if topic.startswith("application:"):
            tell(payload.get("providerId"))  # the applicant's other sessions
        return routes
    return routes


def invited_provider_ids(session: Session, order_id: uuid.UUID) -> set[uuid.UUID]:
    """Providers holding an open invitation or offer for the order (who may join its
    invitation room)."""
    return set(session.scalars(select(OrderMatch.provider_id).where(
        OrderMatch.order_id == order_id,
        OrderMatch.status.in_([MatchStatus.INVITED.value, MatchStatus.OFFERED.value]))))


def _creator_of(session: Session, order_id: uuid.UUID | None) -> uuid.UUID | None:
    if order_id is None:
        return None
    return session.scalar(select(Order.creator_id).where(Order.id == order_id))


def _uuid(value: object) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


class Broadcaster:
    """The spec's ``EventBroadcaster``: to one user, to an order's participants, and to the
    online providers inside a circle (answered by the matching engine's in-memory KD-tree of
    online providers, ``services.provider_index``: a tree query, not a scan). Live pushes: no
    notification row (durable events go through the outbox and ``route``)."""

    def __init__(self, notifier: Notifier, index: Callable[[], ProviderIndex]) -> None:
        self._notifier = notifier
        self._index = index

    def to_user(self, user_id: object, event: str, data: Mapping[str, Any]) -> None:
        self._notifier.emit(event, data, room=user_room(user_id))

    def to_order(self, order: Parties, event: str, data: Mapping[str, Any]) -> None:
        self._notifier.emit_many([
            (event, data, user_room(uid), None)
            for uid in dict.fromkeys((order.creator_id, order.provider_id)) if uid is not None])

    def to_geofence(self, latitude: float, longitude: float, radius_m: float, event: str,
                    data: Mapping[str, Any]) -> list[str]:
        """Push to every online provider within ``radius_m`` (and within their own maximum
        travel, as matching counts them). Returns who was told."""
        found = self._index().within(latitude, longitude, radius_m)
        ids = [str(i) for i in found.ids]
        self._notifier.emit_many([(event, data, user_room(i), None) for i in ids])
        return ids
