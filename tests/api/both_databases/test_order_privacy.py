"""GDPR rights cover the order data too: export lists the user's order history entries, and
erasure removes the free text they wrote there while keeping the records."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Order, OrderEvent
from tests.api.orders_helpers import call, create_order
from tests.factories import PASSWORD, UserFactory


def test_export_and_erasure_cover_order_history(client: FlaskClient,
                                                db_session: Session) -> None:
    creator = UserFactory()
    order = create_order(client, creator)
    call(client, "POST", f"/orders/{order['id']}/cancel", creator,
         {"reason": "my neighbour Alice is ill"})

    export = call(client, "GET", "/users/me/export", creator).json["data"]
    reasons = [e.get("reason") for e in export["orderEvents"]]
    assert "my neighbour Alice is ill" in reasons

    erased = call(client, "DELETE", "/users/me", creator, {"password": PASSWORD})
    assert erased.status_code == 200, erased.json
    stored = db_session.get(Order, uuid.UUID(order["id"]))
    assert stored is not None and stored.cancellation_reason == "[erased]"
    texts = db_session.scalars(select(OrderEvent.reason).where(
        OrderEvent.order_id == stored.id)).all()
    assert "my neighbour Alice is ill" not in texts
    assert len(texts) == 2  # created + cancelled: the history itself stays
