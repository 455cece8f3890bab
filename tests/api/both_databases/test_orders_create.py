"""POST /orders: the spec's examples, every field's bad input, nothing half-written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import OperatingArea, Order, OrderEvent, OutboxMessage, User
from tests.api.orders_helpers import call, order_body
from tests.factories import UserFactory


@pytest.fixture
def creator(db_session: Session) -> User:
    return UserFactory()


def _count(session: Session, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_spec_example_valid_order_is_created(client: FlaskClient, creator: User,
                                             db_session: Session) -> None:
    response = call(client, "POST", "/orders", creator, {
        "title": "Test Live Stream",
        "location": {"latitude": 40.7128, "longitude": -74.0060},
        "baseAmount": 25.00,
    })
    assert response.status_code == 201, response.json
    body = response.json
    assert body["success"] is True and body["data"]["order"]["id"]
    order = body["data"]["order"]
    assert order["status"] == "pending" and order["baseAmount"] == "25.00"
    assert order["currency"] == "USD" and order["creatorId"] == str(creator.id)
    stored = db_session.get(Order, uuid.UUID(order["id"]))
    assert stored is not None and stored.base_amount_minor == 2500
    # History and the outbox event were written in the same transaction.
    assert _count(db_session, OrderEvent) == 1 and _count(db_session, OutboxMessage) == 1
    assert db_session.scalars(select(OutboxMessage.topic)).one() == "order:created"


def test_spec_example_invalid_latitude_is_400(client: FlaskClient, creator: User,
                                              db_session: Session) -> None:
    response = call(client, "POST", "/orders", creator, {
        "title": "Invalid Order",
        "location": {"latitude": 91, "longitude": -74.0060},
        "baseAmount": 25.00,
    })
    assert response.status_code == 400
    assert response.json["success"] is False
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert "location" in response.json["error"]["details"]
    assert _count(db_session, Order) == 0


@pytest.mark.parametrize(("amount", "currency", "minor", "shown"), [
    ("25", "USD", 2500, "25.00"),
    (25.5, "usd", 2550, "25.50"),
    ("1500", "JPY", 1500, "1500"),
    ("1.250", "KWD", 1250, "1.250"),
])
def test_amounts_in_minor_units(client: FlaskClient, creator: User, db_session: Session,
                                amount: Any, currency: str, minor: int, shown: str) -> None:
    response = call(client, "POST", "/orders", creator,
                    order_body(baseAmount=amount, currency=currency))
    assert response.status_code == 201, response.json
    order = response.json["data"]["order"]
    assert order["baseAmount"] == shown and order["currency"] == currency.upper()
    assert db_session.get(Order, uuid.UUID(order["id"])).base_amount_minor == minor  # type: ignore[union-attr]


FUTURE = (datetime.now(UTC) + timedelta(days=1)).isoformat()
BAD_INPUTS = [
    ("missing title", {"title": None}, "title"),
    ("empty title", {"title": ""}, "title"),
    ("huge title", {"title": "x" * 256}, "title"),
    ("huge description", {"description": "x" * 5001}, "description"),
    ("title not a string", {"title": 42}, "title"),
    ("latitude 91", {"location": {"latitude": 91, "longitude": 0}}, "location"),
    ("latitude -90.5", {"location": {"latitude": -90.5, "longitude": 0}}, "location"),
    ("longitude 181", {"location": {"latitude": 0, "longitude": 181}}, "location"),
    ("latitude string", {"location": {"latitude": "north", "longitude": 0}}, "location"),
    ("missing longitude", {"location": {"latitude": 1}}, "location"),
    ("location not an object", {"location": "Paris"}, "location"),
    ("radius too small", {"serviceRadius": 10}, "serviceRadius"),
    ("radius too large", {"serviceRadius": 50_001}, "serviceRadius"),
    ("radius not integer", {"serviceRadius": 100.5}, "serviceRadius"),
    ("amount too many decimals", {"baseAmount": "25.001"}, "baseAmount"),
    ("JPY with decimals", {"baseAmount": "25.5", "currency": "JPY"}, "baseAmount"),
    ("negative amount", {"baseAmount": "-5"}, "baseAmount"),
    ("zero amount", {"baseAmount": 0}, "baseAmount"),
    ("amount garbage", {"baseAmount": "lots"}, "baseAmount"),
    ("amount bool", {"baseAmount": True}, "baseAmount"),
    ("amount huge", {"baseAmount": "1" * 30}, "baseAmount"),
    ("unknown currency", {"currency": "XYZ"}, "currency"),
    ("currency lower garbage", {"currency": "dollars"}, "currency"),
    ("past scheduledFor", {"scheduledFor": "2020-01-01T00:00:00Z"}, "scheduledFor"),
    ("naive scheduledFor", {"scheduledFor": "2030-01-01T00:00:00"}, "scheduledFor"),
    ("garbage scheduledFor", {"scheduledFor": "tonight"}, "scheduledFor"),
    ("too many tags", {"tags": [f"t{i}" for i in range(21)]}, "tags"),
    ("bad tag", {"tags": ["no spaces allowed"]}, "tags"),
    ("huge requirements", {"requirements": {"x": "y" * 5000}}, "requirements"),
    ("unknown field", {"priority": "high"}, "priority"),
]


@pytest.mark.parametrize(("name", "change", "field"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_400_and_writes_nothing(client: FlaskClient, creator: User,
                                             db_session: Session, name: str,
                                             change: dict[str, Any], field: str) -> None:
    body = order_body()
    for key, value in change.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    response = call(client, "POST", "/orders", creator, body)
    assert response.status_code == 400, (name, response.json)
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert field in response.json["error"]["details"], response.json
    assert _count(db_session, Order) == 0 and _count(db_session, OutboxMessage) == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(client: FlaskClient, creator: User,
                                        db_session: Session, literal: str) -> None:
    raw = '{"title": "t", "baseAmount": "5", "location": {"latitude": LAT, "longitude": 0}}'
    raw = raw.replace("LAT", literal)
    response = call(client, "POST", "/orders", creator, data=raw,
                    headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert _count(db_session, Order) == 0


def test_scheduled_order_in_the_future_is_fine(client: FlaskClient, creator: User) -> None:
    response = call(client, "POST", "/orders", creator, order_body(scheduledFor=FUTURE))
    assert response.status_code == 201
    assert response.json["data"]["order"]["scheduledFor"].startswith(FUTURE[:16])


def test_operating_areas_refuse_orders_outside(client: FlaskClient, creator: User,
                                               db_session: Session) -> None:
    # A box around Manhattan.
    ring = [[-74.03, 40.68], [-73.90, 40.68], [-73.90, 40.88], [-74.03, 40.88], [-74.03, 40.68]]
    db_session.add(OperatingArea(name="NYC", geojson={"type": "Polygon", "coordinates": [ring]}))
    db_session.flush()
    inside = call(client, "POST", "/orders", creator, order_body())
    assert inside.status_code == 201
    outside = call(client, "POST", "/orders", creator,
                   order_body(location={"latitude": 48.85, "longitude": 2.35}))
    assert outside.status_code == 422
    assert outside.json["error"]["code"] == "OUTSIDE_OPERATING_AREA"
    assert _count(db_session, Order) == 1
    # The refused order left no history or outbox row behind either.
    assert _count(db_session, OrderEvent) == 1 and _count(db_session, OutboxMessage) == 1


def test_authentication_and_permission(client: FlaskClient, db_session: Session) -> None:
    assert call(client, "POST", "/orders", None, order_body()).status_code == 401
    provider = UserFactory(provider=True, verified=True)
    forbidden = call(client, "POST", "/orders", provider, order_body())
    assert forbidden.status_code == 403
    assert _count(db_session, Order) == 0
