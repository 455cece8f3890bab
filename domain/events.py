"""Recording what happened: the order's history row and the outbox message, in the caller's
transaction. Nothing is published here; the relay publishes only what was committed."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, inspect
from sqlalchemy.orm import Session

from core.context import request_id_var
from db.models import Order, OrderEvent, OutboxMessage
from db.session import note_for_commit
from db.types import utcnow
from domain.money import format_minor
from domain.order_states import Actor
from domain.projections import public_order_view


def order_snapshot(order: Order | Row[Any]) -> dict[str, Any]:
    """The payload of an order event, before the event's own fields (``event``, ``actor``...).

    At the top, what consumers route on without reading the order, under the names every stored
    payload has used (``note_order_view_changed``: who sees this order; the relay; the
    real-time layer): ``orderId``, ``status``, ``creatorId``, ``providerId``, ``version``.
    Under ``order``, the order as the API shows it, without personal data
    (``domain.projections.public_order_view``)."""
    view = public_order_view(order)
    return {"orderId": view["id"], "status": view["status"], "creatorId": view["creatorId"],
            "providerId": view["providerId"], "version": order.version, "order": view}


_V1_ORDER_FACTS = ("latitude", "longitude", "serviceRadius")
_V1_NOTIFICATION_FACTS = (*_V1_ORDER_FACTS, "title", "baseAmountMinor", "currency")


def current_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A stored event or notification payload in today's shape.

    Rows written before the one projection carried a few of the order's facts flat (order
    events: position and radius; notifications: also the title and ``baseAmountMinor``). They
    are read as today's shape with the partial ``order`` they had, in the API's names and
    formats; any other payload is returned as it is. The relay publishes through this, so
    subscribers see one shape whatever the age of the row."""
    if "order" in payload or "orderId" not in payload or "latitude" not in payload:
        return dict(payload)
    order: dict[str, Any] = {
        "id": payload["orderId"],
        "location": {"latitude": payload["latitude"], "longitude": payload["longitude"]},
        "serviceRadius": payload["serviceRadius"],
    }
    if "creatorId" in payload:  # an order event
        order |= {"status": payload["status"], "creatorId": payload["creatorId"],
                  "providerId": payload.get("providerId")}
        dropped: tuple[str, ...] = _V1_ORDER_FACTS
    else:  # a provider's notification
        order |= {"title": payload["title"], "currency": payload["currency"],
                  "baseAmount": format_minor(payload["baseAmountMinor"], payload["currency"])}
        dropped = _V1_NOTIFICATION_FACTS
    return {k: v for k, v in payload.items() if k not in dropped} | {"order": order}


def outbox_values(topic: str, aggregate_id: str, payload: dict[str, Any],
                  now: datetime) -> dict[str, Any]:
    """The columns of one outbox row."""
    return {"topic": topic, "aggregate_id": aggregate_id, "payload": payload,
            "request_id": request_id_var.get(), "created_at": now, "attempts": 0}


def emit(session: Session, topic: str, aggregate_id: str, payload: dict[str, Any]) -> None:
    """Queue an event for publication after commit (transactional outbox)."""
    values = outbox_values(topic, aggregate_id, payload, utcnow())
    row = OutboxMessage(**values)
    session.add(row)
    if "orderId" in payload and "creatorId" in payload:  # an order snapshot, not a side event
        note_order_view_changed(session, payload)
    note_outbox_written(session, row, values)


#: ``note_for_commit`` topic: every outbox row the transaction wrote (``WrittenOutbox``), so
#: the relay's commit hook can send the rows' follow-up tasks at once (``tasks.events``).
OUTBOX_WRITTEN = "outbox_written"


@dataclass(frozen=True, slots=True)
class WrittenOutbox:
    """An outbox row as the commit hook needs it: no database access to read it."""

    topic: str
    aggregate_id: str
    request_id: str | None
    #: The ORM row (its id is assigned when it is flushed) or the id an INSERT returned.
    row: OutboxMessage | int

    @property
    def id(self) -> int | None:
        """The row's id; None if it was never flushed, or a rolled-back savepoint undid it
        (``identity`` reads the identity map, never the database)."""
        if isinstance(self.row, int):
            return self.row
        identity = inspect(self.row).identity
        return int(identity[0]) if identity else None


def note_outbox_written(session: Session, row: OutboxMessage | int,
                        values: Mapping[str, Any]) -> None:
    """This transaction wrote an outbox row (the ORM row or its id; ``values``: its columns,
    ``outbox_values``): kick the relay after it commits, and tell the commit hook which row."""
    note_for_commit(session, OUTBOX_WRITTEN, WrittenOutbox(
        values["topic"], values["aggregate_id"], values["request_id"], row))
    mark_outbox_pending(session)


#: ``note_for_commit`` topic: outbox topics whose follow-ups the committing transaction did
#: itself (``follow_ups_done_here``).
FOLLOW_UPS_DONE = "follow_ups_done"


def follow_ups_done_here(session: Session, topic: str) -> None:
    """This transaction already did what the follow-ups of its ``topic`` rows would do (e.g.
    matching wrote the invitations' notifications with the invitations): the commit hook marks
    those rows followed without sending anything, and the relay skips them too."""
    note_for_commit(session, FOLLOW_UPS_DONE, topic)


#: ``note_for_commit`` topic: (order id, creator id, provider id) of every committed change to
#: an order as the API shows it (``domain/order_cache.py`` invalidates its cached reads with it);
#: ("*",) for a change too wide to list (erasure's scrub).
ORDER_VIEW_CHANGED = "order_view_changed"


def note_order_view_changed(session: Session, payload: dict[str, Any]) -> None:
    """From an order event's payload (``order_snapshot``): who sees this order."""
    note_for_commit(session, ORDER_VIEW_CHANGED,
                    (payload["orderId"], payload["creatorId"], payload.get("providerId")))


def mark_outbox_pending(session: Session) -> None:
    """This transaction wrote outbox rows: kick the relay after it commits."""
    session.info["outbox_pending"] = True


def order_event_values(
    order: Order | Row[Any],
    event: str,
    *,
    actor: Actor,
    actor_id: uuid.UUID | None,
    now: datetime,
    from_status: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The columns of the order's history row and of its outbox row, for one event."""
    history = {
        "order_id": order.id, "event": event, "from_status": from_status,
        "to_status": order.status.value, "actor_id": actor_id, "actor_role": actor.value,
        "reason": reason, "request_id": request_id_var.get(), "data": data, "created_at": now,
    }
    payload = order_snapshot(order) | {"event": event, "actor": actor.value}
    if reason:
        payload["reason"] = reason
    if data:
        payload["data"] = data
    return history, outbox_values(event, str(order.id), payload, now)


def record_order_event(
    session: Session,
    order: Order,
    event: str,
    *,
    actor: Actor,
    actor_id: uuid.UUID | None,
    from_status: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append to the order's history and queue the matching outbox event."""
    history, message = order_event_values(
        order, event, actor=actor, actor_id=actor_id, now=utcnow(), from_status=from_status,
        reason=reason, data=data)
    session.add(OrderEvent(**history))
    row = OutboxMessage(**message)
    session.add(row)
    note_order_view_changed(session, message["payload"])
    note_outbox_written(session, row, message)
