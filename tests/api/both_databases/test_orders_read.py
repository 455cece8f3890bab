"""Listing, filters, pagination, reading, editing, deleting and the nearby search."""

from __future__ import annotations

import random
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from core.geo import great_circle_m
from db.models import Order, User
from tests.api.orders_helpers import call, create_order, order_body
from tests.factories import OrderFactory, UserFactory


@pytest.fixture
def creator(db_session: Session) -> User:
    return UserFactory()


def test_pagination_walks_all_my_orders_and_filters(client: FlaskClient, creator: User,
                                                    db_session: Session) -> None:
    other = UserFactory()
    mine = [create_order(client, creator, tags=["night"] if i % 2 else ["day"])
            for i in range(7)]
    create_order(client, other)
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = call(client, "GET", "/orders", creator, query_string=query).json["data"]
        assert page["pagination"]["totalCount"] == 7 + len(seen) // 3  # one more per page
        seen += [o["id"] for o in page["items"]]
        cursor = page["pagination"]["nextCursor"]
        if not page["pagination"]["hasNextPage"]:
            break
        create_order(client, creator)  # inserts between pages do not disturb the walk
    assert seen == [o["id"] for o in reversed(mine)]
    night = call(client, "GET", "/orders", creator, query_string={"tag": "night"}).json["data"]
    assert {o["id"] for o in night["items"]} == {o["id"] for o in mine if "night" in o["tags"]}
    none = call(client, "GET", "/orders", creator, query_string={"status": "completed"})
    assert none.json["data"]["items"] == []
    as_provider = call(client, "GET", "/orders", creator, query_string={"role": "provider"})
    assert as_provider.json["data"]["pagination"]["totalCount"] == 0


@pytest.mark.parametrize("query", [
    {"limit": 0}, {"limit": 101}, {"status": "lost"}, {"role": "boss"},
    {"cursor": "forged"}, {"createdFrom": "yesterday"},
])
def test_bad_list_queries_are_400(client: FlaskClient, creator: User,
                                  query: dict[str, Any]) -> None:
    response = call(client, "GET", "/orders", creator, query_string=query)
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] in ("VALIDATION_ERROR", "INVALID_CURSOR")


def test_edit_and_delete_while_pending(client: FlaskClient, creator: User,
                                       db_session: Session) -> None:
    order = create_order(client, creator)
    path = f"/orders/{order['id']}"
    edited = call(client, "PUT", path, creator, {"title": "New title", "baseAmount": "30",
                                                 "currency": "EUR"})
    assert edited.status_code == 200, edited.json
    assert edited.json["data"]["order"]["baseAmount"] == "30.00"
    assert edited.json["data"]["order"]["currency"] == "EUR"
    bad = call(client, "PUT", path, creator, {"currency": "JPY"})
    assert bad.status_code == 400  # a currency change needs its amount
    assert call(client, "PUT", path, creator, {}).status_code == 400
    assert call(client, "PUT", path, creator, {"baseAmount": "1.234"}).status_code == 400
    deleted = call(client, "DELETE", path, creator)
    assert deleted.status_code == 200 and deleted.json["data"]["deleted"] is True
    assert call(client, "GET", path, creator).status_code == 404


def test_cannot_edit_or_delete_after_acceptance(client: FlaskClient, creator: User,
                                                db_session: Session) -> None:
    order = OrderFactory(creator=creator, accepted=True)
    path = f"/orders/{order.id}"
    edit = call(client, "PUT", path, creator, {"title": "late change"})
    assert edit.status_code == 409
    assert edit.json["error"]["code"] == "INVALID_STATE_TRANSITION"
    assert call(client, "DELETE", path, creator).status_code == 409


def test_nearby_through_the_api_matches_brute_force(client: FlaskClient,
                                                    db_session: Session) -> None:
    provider = UserFactory(provider=True, verified=True)
    creator = UserFactory()
    rng = random.Random(7)
    centre = (48.8566, 2.3522)
    orders: list[Order] = [
        OrderFactory(creator=creator, latitude=centre[0] + rng.uniform(-0.05, 0.05),
                     longitude=centre[1] + rng.uniform(-0.05, 0.05))
        for _ in range(60)
    ]
    response = call(client, "GET", "/orders/nearby", provider,
                    query_string={"latitude": centre[0], "longitude": centre[1],
                                  "radius": 3000, "limit": 100})
    assert response.status_code == 200
    items = response.json["data"]["items"]
    expected = sorted((great_circle_m(*centre, o.latitude, o.longitude), str(o.id))
                      for o in orders)
    expected_ids = [oid for d, oid in expected if d <= 3000]
    assert [i["id"] for i in items] == expected_ids
    assert all(i["creatorName"] == creator.username for i in items)
    distances = [i["distanceMeters"] for i in items]
    assert distances == sorted(distances)


@pytest.mark.parametrize("query", [
    {"latitude": 91, "longitude": 0}, {"latitude": 0}, {"latitude": 0, "longitude": -181},
    {"latitude": "nan", "longitude": 0}, {"latitude": 0, "longitude": 0, "radius": 0},
    {"latitude": 0, "longitude": 0, "radius": 60_000}, {"latitude": 0, "longitude": 0,
                                                        "limit": 1000},
])
def test_nearby_bad_queries(client: FlaskClient, creator: User, query: dict[str, Any]) -> None:
    response = call(client, "GET", "/orders/nearby", creator, query_string=query)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "VALIDATION_ERROR"


def test_spec_body_shape(client: FlaskClient, creator: User) -> None:
    order = create_order(client, creator, **order_body(scheduledFor=None))
    assert set(order) >= {"id", "title", "status", "location", "serviceRadius", "baseAmount",
                          "currency", "createdAt", "updatedAt", "tags", "requirements"}
    assert order["location"] == {"latitude": 40.7128, "longitude": -74.006,
                                 "address": "Pier 17"}
