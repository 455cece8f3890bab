"""Applications and the order lifecycle through the API: who may do what, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import OrderApplication, OrderEvent, OutboxMessage, User
from domain.presence_store import LocationStore, ProviderLocation
from tests.api.orders_helpers import call, create_order
from tests.factories import UserFactory

NYC = (40.7128, -74.0060)




@pytest.fixture
def people(db_session: Session, redis_client: redis.Redis) -> dict[str, User]:
    return {
        "creator": UserFactory(),
        "provider": UserFactory(provider=True, verified=True),
        "rival": UserFactory(provider=True, verified=True),
        "unverified": UserFactory(provider=True),
        "stranger": UserFactory(),
        "admin": UserFactory(admin=True),
    }


def place(redis_client: redis.Redis, user: User, lat: float, lon: float) -> None:
    LocationStore(redis_client, 300).save(user.id, ProviderLocation(
        lat, lon, 5.0, datetime.now(UTC)))


def apply(client: FlaskClient, order: dict[str, Any], user: User, **body: Any) -> Any:
    return call(client, "POST", f"/orders/{order['id']}/applications", user, body)


def accepted_order(client: FlaskClient, people: dict[str, User]) -> dict[str, Any]:
    order = create_order(client, people["creator"])
    app_id = apply(client, order, people["provider"], proposedAmount="30.00").json[
        "data"]["application"]["id"]
    apply(client, order, people["rival"])
    response = call(client, "POST", f"/orders/{order['id']}/accept", people["creator"],
                    {"applicationId": app_id})
    assert response.status_code == 200, response.json
    return dict(response.json["data"]["order"])


def test_full_happy_path(client: FlaskClient, people: dict[str, User], db_session: Session,
                         redis_client: redis.Redis) -> None:
    order = accepted_order(client, people)
    assert order["status"] == "accepted" and order["providerId"] == str(people["provider"].id)
    assert order["agreedAmount"] == "30.00"
    statuses = dict(db_session.execute(
        select(OrderApplication.provider_id, OrderApplication.status)).all())
    assert statuses[people["provider"].id].value == "accepted"
    assert statuses[people["rival"].id].value == "rejected"

    place(redis_client, people["provider"], NYC[0] + 0.001, NYC[1])  # ~111 m away
    started = call(client, "POST", f"/orders/{order['id']}/start", people["provider"])
    assert started.status_code == 200, started.json
    assert started.json["data"]["order"]["startedAt"]
    done = call(client, "POST", f"/orders/{order['id']}/complete", people["provider"])
    assert done.json["data"]["order"]["status"] == "completed"

    events = db_session.scalars(select(OrderEvent.event).order_by(OrderEvent.id)).all()
    assert events == ["order:created", "order:accepted", "order:started", "order:completed"]
    topics = db_session.scalars(select(OutboxMessage.topic).order_by(OutboxMessage.id)).all()
    assert topics == ["order:created", "application:created", "application:created",
                      "order:accepted", "order:started", "order:completed"]


def test_application_rules(client: FlaskClient, people: dict[str, User]) -> None:
    order = create_order(client, people["creator"])
    assert apply(client, order, people["provider"]).status_code == 201
    again = apply(client, order, people["provider"])
    assert again.status_code == 409 and again.json["error"]["code"] == "ALREADY_APPLIED"
    unverified = apply(client, order, people["unverified"])
    assert unverified.status_code == 403
    assert unverified.json["error"]["code"] == "PROVIDER_NOT_VERIFIED"
    assert apply(client, order, people["creator"]).status_code == 403  # creators cannot apply
    bad = apply(client, order, people["rival"], proposedAmount="1.001")
    assert bad.status_code == 400 and "proposedAmount" in bad.json["error"]["details"]
    past = apply(client, order, people["rival"], estimatedArrival="2020-01-01T00:00:00Z")
    assert past.status_code == 400


def test_who_sees_which_applications(client: FlaskClient, people: dict[str, User]) -> None:
    order = create_order(client, people["creator"])
    apply(client, order, people["provider"])
    apply(client, order, people["rival"])
    path = f"/orders/{order['id']}/applications"
    assert len(call(client, "GET", path, people["creator"]).json["data"]["items"]) == 2
    mine = call(client, "GET", path, people["provider"]).json["data"]["items"]
    assert [a["providerId"] for a in mine] == [str(people["provider"].id)]
    assert call(client, "GET", path, people["stranger"]).status_code == 404


def test_withdraw(client: FlaskClient, people: dict[str, User]) -> None:
    order = create_order(client, people["creator"])
    app_id = apply(client, order, people["provider"]).json["data"]["application"]["id"]
    path = f"/orders/{order['id']}/applications/{app_id}/withdraw"
    assert call(client, "POST", path, people["rival"]).status_code == 404  # not theirs
    done = call(client, "POST", path, people["provider"])
    assert done.json["data"]["application"]["status"] == "withdrawn"
    assert call(client, "POST", path, people["provider"]).status_code == 409
    accept = call(client, "POST", f"/orders/{order['id']}/accept", people["creator"],
                  {"applicationId": app_id})
    assert accept.status_code == 409 and accept.json["error"]["code"] == "APPLICATION_NOT_PENDING"


def test_start_requires_being_inside_the_radius(client: FlaskClient, people: dict[str, User],
                                                redis_client: redis.Redis) -> None:
    order = accepted_order(client, people)
    path = f"/orders/{order['id']}/start"
    unknown = call(client, "POST", path, people["provider"])
    assert unknown.status_code == 422 and unknown.json["error"]["code"] == "LOCATION_UNKNOWN"
    place(redis_client, people["provider"], NYC[0] + 0.01, NYC[1])  # ~1.1 km > 500 m
    far = call(client, "POST", path, people["provider"])
    assert far.status_code == 422 and far.json["error"]["code"] == "OUTSIDE_GEOFENCE"
    place(redis_client, people["provider"], *NYC)
    assert call(client, "POST", path, people["rival"]).status_code == 404  # not assigned
    assert call(client, "POST", path, people["creator"]).status_code == 403
    assert call(client, "POST", path, people["provider"]).status_code == 200


def test_illegal_transitions_are_409(client: FlaskClient, people: dict[str, User],
                                     redis_client: redis.Redis) -> None:
    order = create_order(client, people["creator"])
    oid = order["id"]
    creator = people["creator"]
    for action in ("complete", "dispute"):
        response = call(client, "POST", f"/orders/{oid}/{action}", creator, {"reason": "x"}
                        if action == "dispute" else None)
        assert response.status_code == 409, (action, response.json)
        assert response.json["error"]["code"] == "INVALID_STATE_TRANSITION"
    resolve = call(client, "POST", f"/admin/orders/{oid}/resolve", people["admin"],
                   {"outcome": "release", "note": "n"})
    assert resolve.status_code == 409
    cancelled = call(client, "POST", f"/orders/{oid}/cancel", creator, {"reason": "changed"})
    assert cancelled.json["data"]["order"]["cancellationReason"] == "changed"
    for action, body in (("cancel", {"reason": "again"}), ("start", None),
                         ("accept", {"applicationId": oid})):
        response = call(client, "POST", f"/orders/{oid}/{action}", creator, body)
        assert response.status_code in (403, 409), (action, response.json)
        if response.status_code == 409:
            assert response.json["error"]["code"] == "INVALID_STATE_TRANSITION"


def test_cancel_after_acceptance_by_either_side(client: FlaskClient,
                                                people: dict[str, User]) -> None:
    order = accepted_order(client, people)
    response = call(client, "POST", f"/orders/{order['id']}/cancel", people["provider"],
                    {"reason": "car broke down"})
    assert response.status_code == 200
    assert response.json["data"]["order"]["status"] == "cancelled"


def test_dispute_window_and_resolution(client: FlaskClient, people: dict[str, User],
                                       redis_client: redis.Redis) -> None:
    order = accepted_order(client, people)
    place(redis_client, people["provider"], *NYC)
    call(client, "POST", f"/orders/{order['id']}/start", people["provider"])
    call(client, "POST", f"/orders/{order['id']}/complete", people["provider"])
    path = f"/orders/{order['id']}/dispute"
    assert call(client, "POST", path, people["provider"], {"reason": "x"}).status_code == 403
    with freeze_time(datetime.now(UTC) + timedelta(hours=73)):
        late = call(client, "POST", path, people["creator"], {"reason": "no audio"})
    assert late.status_code == 409 and late.json["error"]["code"] == "DISPUTE_WINDOW_CLOSED"
    disputed = call(client, "POST", path, people["creator"], {"reason": "no audio"})
    assert disputed.json["data"]["order"]["status"] == "disputed"
    resolve = f"/admin/orders/{order['id']}/resolve"
    assert call(client, "POST", resolve, people["creator"],
                {"outcome": "refund", "note": "n"}).status_code == 403
    bad = call(client, "POST", resolve, people["admin"], {"outcome": "split", "note": "n"})
    assert bad.status_code == 400
    refunded = call(client, "POST", resolve, people["admin"],
                    {"outcome": "refund", "note": "audio missing"})
    assert refunded.json["data"]["order"]["status"] == "cancelled"


def test_strangers_get_404_everywhere(client: FlaskClient, people: dict[str, User]) -> None:
    order = accepted_order(client, people)
    stranger = people["stranger"]
    oid = order["id"]
    assert call(client, "GET", f"/orders/{oid}", stranger).status_code == 404
    assert call(client, "POST", f"/orders/{oid}/cancel", stranger,
                {"reason": "x"}).status_code == 404
    assert call(client, "PUT", f"/orders/{oid}", stranger, {"title": "mine"}).status_code == 404
    assert call(client, "DELETE", f"/orders/{oid}", stranger).status_code == 404
    # A pending order is visible to providers who could apply, not to other creators.
    pending = create_order(client, people["creator"])
    assert call(client, "GET", f"/orders/{pending['id']}", people["rival"]).status_code == 200
    assert call(client, "GET", f"/orders/{pending['id']}", stranger).status_code == 404
