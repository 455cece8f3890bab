"""An order as it leaves the process: one projection, wherever it is sent.

``order_view`` is the order exactly as the REST API sends it (``OrderSchema`` documents it, and
tests/api/test_openapi_contract.py holds the two equal on real responses). Everything else that
shows an order to someone starts from it:

* the order events of the outbox (topics ``order:*``): ``domain.events.order_snapshot``;
* the invitations and offers sent to providers (``domain.notifications``);
* the real-time server (next): the ``order`` of an event payload is what it forwards.

Events and notifications carry ``public_order_view``: the same dict without what account
erasure scrubs from an order (``db.queries.users.scrub_free_text``: the free text and the street
address), because outbox and notification rows are kept where the scrub does not reach.

Framework-free (no Flask, no marshmallow) and hand-written for speed: building this dict is on
the hot path of every order read, the nearby search and the create (docs/benchmarks.md); it is
about ten times faster than a marshmallow dump of the same shape.

``message_view`` is the same idea for an order chat message: what ``GET/POST
/orders/{id}/messages`` send and what the ``message:created`` event carries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row

from db.models import Order, OrderMessage
from domain.money import format_minor

#: An ``Order`` or a row of the orders table (the nearby search and the create statement read
#: rows); both have the same attribute names.
OrderLike = Order | Row[Any]

#: Fields of ``order_view`` that events and notifications leave out (personal data, see above).
PRIVATE_FIELDS = ("description", "cancellationReason")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _money(minor: int | None, currency: str) -> str | None:
    return None if minor is None else format_minor(minor, currency)


def order_view(order: OrderLike) -> dict[str, Any]:
    """The order as the REST API sends it: a fresh dict (callers may extend it in place)."""
    return {
        "id": str(order.id),
        "title": order.title,
        "description": order.description,
        "status": str(order.status),  # an OrderStatus, or its value from a raw row
        "creatorId": str(order.creator_id),
        "providerId": str(order.provider_id) if order.provider_id else None,
        "location": {"latitude": order.latitude, "longitude": order.longitude,
                     "address": order.location_address},
        "serviceRadius": order.service_radius,
        "baseAmount": _money(order.base_amount_minor, order.currency),
        "agreedAmount": _money(order.agreed_amount_minor, order.currency),
        "currency": order.currency,
        "scheduledFor": _iso(order.scheduled_for),
        "acceptedAt": _iso(order.accepted_at),
        "startedAt": _iso(order.started_at),
        "completedAt": _iso(order.completed_at),
        "cancelledAt": _iso(order.cancelled_at),
        "cancellationReason": order.cancellation_reason,
        "requirements": order.requirements,
        "tags": order.tags,
        "createdAt": _iso(order.created_at),
        "updatedAt": _iso(order.updated_at),
    }


def public_order_view(order: OrderLike) -> dict[str, Any]:
    """``order_view`` without the personal data: what events and notifications carry."""
    view = order_view(order)
    for name in PRIVATE_FIELDS:
        del view[name]
    del view["location"]["address"]
    return view


def message_view(message: OrderMessage) -> dict[str, Any]:
    """A chat message as the REST API sends it. An erased sender's message keeps its place in
    the conversation with ``body`` null and ``deleted`` true."""
    return {
        "id": str(message.id),
        "orderId": str(message.order_id),
        "senderId": str(message.sender_id),
        "body": message.body,
        "createdAt": _iso(message.created_at),
        "deleted": message.deleted_at is not None,
    }
