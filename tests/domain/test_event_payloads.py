"""Order events and provider notifications carry the order as the REST API shows it (minus its
personal data), and payloads stored in the older flat shape are read in today's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import OutboxMessage
from domain.events import current_payload
from domain.presence_store import LocationStore, ProviderLocation
from domain.projections import PRIVATE_FIELDS
from tests.api.orders_helpers import call, create_order
from tests.factories import UserFactory


def _public(shown: dict[str, Any]) -> dict[str, Any]:
    """What the API showed, without what events leave out."""
    public = {k: v for k, v in shown.items() if k not in PRIVATE_FIELDS}
    return public | {"location": {k: v for k, v in shown["location"].items() if k != "address"}}


def test_every_order_event_carries_the_order_the_api_showed(
        client: FlaskClient, db_session: Session, redis_client: redis.Redis) -> None:
    creator, provider = UserFactory(), UserFactory(provider=True, verified=True)
    shown = {"order:created": create_order(client, creator)}
    oid = shown["order:created"]["id"]
    application = call(client, "POST", f"/orders/{oid}/applications", provider, {}).json
    shown["order:accepted"] = call(client, "POST", f"/orders/{oid}/accept", creator, {
        "applicationId": application["data"]["application"]["id"]}).json["data"]["order"]
    LocationStore(redis_client, 300).save(provider.id, ProviderLocation(
        40.7128, -74.0060, 5.0, datetime.now(UTC)))
    shown["order:started"] = call(client, "POST", f"/orders/{oid}/start",
                                  provider).json["data"]["order"]
    shown["order:cancelled"] = call(client, "POST", f"/orders/{oid}/cancel", creator,
                                    {"reason": "rain"}).json["data"]["order"]

    events = {m.topic: m.payload for m in db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.topic.like("order:%")))}
    assert set(events) == set(shown)
    for topic, order in shown.items():
        payload = events[topic]
        assert payload["order"] == _public(order), topic
        # The routing facts at the top are the same as the order's own.
        assert (payload["orderId"], payload["status"], payload["creatorId"],
                payload["providerId"]) == (order["id"], order["status"], order["creatorId"],
                                           order["providerId"])
        assert payload["event"] == topic and current_payload(payload) == payload


def test_payloads_stored_in_the_flat_shape_are_read_in_todays() -> None:
    old_event = {"orderId": "o1", "status": "accepted", "creatorId": "c1", "providerId": "p1",
                 "latitude": 1.5, "longitude": 2.5, "serviceRadius": 500, "version": 3,
                 "event": "order:accepted", "actor": "creator"}
    assert current_payload(old_event) == {
        "orderId": "o1", "status": "accepted", "creatorId": "c1", "providerId": "p1",
        "version": 3, "event": "order:accepted", "actor": "creator",
        "order": {"id": "o1", "status": "accepted", "creatorId": "c1", "providerId": "p1",
                  "location": {"latitude": 1.5, "longitude": 2.5}, "serviceRadius": 500}}
    old_notification = {
        "event": "order:created", "recipientId": "r1", "orderId": "o1", "matchId": "m1",
        "title": "Fireworks", "latitude": 1.5, "longitude": 2.5, "serviceRadius": 500,
        "baseAmountMinor": 1250, "currency": "KWD", "distanceMeters": 80, "rank": 1,
        "offerExpiresAt": None}
    assert current_payload(old_notification) == {
        "event": "order:created", "recipientId": "r1", "orderId": "o1", "matchId": "m1",
        "distanceMeters": 80, "rank": 1, "offerExpiresAt": None,
        "order": {"id": "o1", "title": "Fireworks", "currency": "KWD", "baseAmount": "1.250",
                  "location": {"latitude": 1.5, "longitude": 2.5}, "serviceRadius": 500}}
    # Payloads that never had the flat shape pass as they are.
    payment = {"paymentId": "x", "orderId": "o1", "creatorId": "c1", "stage": "hold"}
    geofence = {"event": "location:geofence_exited", "orderId": "o1", "creatorId": "c1",
                "distanceMeters": 800, "serviceRadius": 500}
    for payload in (payment, geofence):
        assert current_payload(payload) == payload
