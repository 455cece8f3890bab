"""Every list pages like ``GET /orders`` (db/pagination.py): applications, invitations and the
nearby search walk page by page with ``nextCursor``, in the ``items`` + ``pagination``
envelope, and refuse a forged or tampered cursor and an out-of-range limit (400, as orders).
Lists keyed by time share one cursor format, as before; the nearby search's (keyed by
distance) and theirs refuse each other's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus
from core.geo import great_circle_m
from db.models import Order, OrderApplication, OrderMatch, User
from tests.api.orders_helpers import call
from tests.factories import OrderFactory, UserFactory

T0 = datetime(2026, 6, 1, tzinfo=UTC)
CENTRE = (48.8566, 2.3522)
PAGINATION_KEYS = {"hasNextPage", "hasPreviousPage", "nextCursor", "previousCursor",
                   "totalCount"}


def _walk(client: FlaskClient, user: User, path: str, limit: int,
          **query: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Every id the list yields, page by page, and every page's ``pagination``."""
    seen: list[str] = []
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        args = query | {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = call(client, "GET", path, user, query_string=args)
        assert response.status_code == 200, response.json
        data = response.json["data"]
        assert set(data) == {"items", "pagination"}
        assert set(data["pagination"]) == PAGINATION_KEYS
        assert len(data["items"]) <= limit
        seen += [item["id"] for item in data["items"]]
        pages.append(data["pagination"])
        cursor = data["pagination"]["nextCursor"]
        if not data["pagination"]["hasNextPage"]:
            assert cursor is None
            return seen, pages
        assert cursor and len(pages) < 50


def _refused(client: FlaskClient, user: User, path: str, query: dict[str, Any]) -> None:
    response = call(client, "GET", path, user, query_string=query)
    assert response.status_code == 400, response.json
    assert response.json["success"] is False
    assert response.json["error"]["code"] in ("VALIDATION_ERROR", "INVALID_CURSOR")


def _orders_cursor(client: FlaskClient, user: User) -> str:
    """A genuine cursor of another list (``GET /orders``): signed, but not for this list."""
    for i in range(3):
        OrderFactory(creator=user, created_at=T0 + timedelta(minutes=i))
    page = call(client, "GET", "/orders", user, query_string={"limit": 1}).json["data"]
    cursor: str = page["pagination"]["nextCursor"]
    assert cursor
    return cursor


BAD_QUERIES: list[Callable[[str], dict[str, Any]]] = [
    lambda _: {"cursor": "forged"},
    lambda good: {"cursor": good[:-2] + ("AA" if not good.endswith("AA") else "BB")},
    lambda _: {"limit": 0},
    lambda _: {"limit": 101},
    lambda _: {"limit": 10_000},
    lambda _: {"limit": "many"},
]


# ----------------------------------------------------------------------------- applications
@pytest.fixture
def applied(db_session: Session) -> tuple[User, Order, list[OrderApplication], User]:
    creator = UserFactory()
    order = OrderFactory(creator=creator)
    applications = []
    for i in range(7):
        provider = UserFactory(provider=True, verified=True)
        application = OrderApplication(order_id=order.id, provider_id=provider.id,
                                       status=ApplicationStatus.PENDING,
                                       created_at=T0 + timedelta(minutes=i // 2))  # ties
        db_session.add(application)
        applications.append(application)
    db_session.commit()
    return creator, order, applications, provider


def test_applications_page_newest_first(client: FlaskClient, db_session: Session,
                                        applied: tuple[User, Order, list[OrderApplication],
                                                       User]) -> None:
    creator, order, applications, last_provider = applied
    path = f"/orders/{order.id}/applications"
    seen, pages = _walk(client, creator, path, limit=3)
    newest_first = sorted(applications, key=lambda a: (a.created_at, a.id), reverse=True)
    assert seen == [str(a.id) for a in newest_first]
    assert [p["totalCount"] for p in pages] == [7, 7, 7]
    assert [p["hasPreviousPage"] for p in pages] == [False, True, True]
    # A provider still sees only their own application, in the same envelope.
    mine, _ = _walk(client, last_provider, path, limit=3)
    assert mine == [str(applications[-1].id)]


def test_applications_refuse_bad_cursors_and_limits(
        client: FlaskClient, db_session: Session,
        applied: tuple[User, Order, list[OrderApplication], User]) -> None:
    creator, order, _, _ = applied
    path = f"/orders/{order.id}/applications"
    good = call(client, "GET", path, creator, query_string={"limit": 2}).json["data"]
    cursor = good["pagination"]["nextCursor"]
    for bad in BAD_QUERIES:
        _refused(client, creator, path, bad(cursor))


# ------------------------------------------------------------------------------ invitations
def test_invitations_page_newest_first_and_refuse_bad_input(
        client: FlaskClient, db_session: Session) -> None:
    provider = UserFactory(provider=True, verified=True)
    matches = []
    for i in range(5):
        order = OrderFactory()
        match = OrderMatch(order_id=order.id, provider_id=provider.id, source="order_created",
                           status="invited" if i % 2 else "offered", rank=1, score=0.5,
                           distance_m=100.0 + i, created_at=T0 + timedelta(minutes=i))
        db_session.add(match)
        matches.append(match)
    closed = OrderFactory(accepted=True)  # an order already taken is not an open invitation
    db_session.add(OrderMatch(order_id=closed.id, provider_id=provider.id, source="order_created",
                              status="invited", rank=1, score=0.5, distance_m=1.0))
    db_session.commit()
    path = "/providers/me/invitations"
    seen, pages = _walk(client, provider, path, limit=2)
    assert seen == [str(m.id) for m in reversed(matches)]
    assert [p["totalCount"] for p in pages] == [5, 5, 5]
    first = call(client, "GET", path, provider, query_string={"limit": 2}).json["data"]
    assert first["items"][0]["order"]["id"] == str(matches[-1].order_id)  # the order rides along
    for bad in BAD_QUERIES:
        _refused(client, provider, path, bad(first["pagination"]["nextCursor"]))


# ----------------------------------------------------------------------------------- nearby
def test_nearby_pages_nearest_first_with_ties_at_the_page_edges(
        client: FlaskClient, db_session: Session) -> None:
    provider = UserFactory(provider=True, verified=True)
    orders: list[Order] = []
    for i in range(8):  # spread out, inside 3 km
        orders.append(OrderFactory(latitude=CENTRE[0] + 0.002 * (i + 1),
                                   longitude=CENTRE[1] + 0.001 * (i % 3)))
    venue = (CENTRE[0] - 0.004, CENTRE[1])  # five orders at one spot: equal distances
    orders += [OrderFactory(latitude=venue[0], longitude=venue[1]) for _ in range(5)]
    OrderFactory(latitude=CENTRE[0] + 0.5, longitude=CENTRE[1])  # outside the radius
    db_session.commit()
    query = {"latitude": CENTRE[0], "longitude": CENTRE[1], "radius": 3000}
    whole = call(client, "GET", "/orders/nearby", provider,
                 query_string=query | {"limit": 100}).json["data"]
    everything = [item["id"] for item in whole["items"]]
    # No count: it is the work the KNN scan skips (db/queries/orders.page_pending_near).
    assert len(everything) == 13 and whole["pagination"]["totalCount"] is None
    assert whole["pagination"]["hasNextPage"] is False
    # Nearest first, ties (the venue) by id.
    expected = sorted((round(great_circle_m(*CENTRE, o.latitude, o.longitude), 3), str(o.id))
                      for o in orders)
    assert [oid for _, oid in expected] == everything
    for limit in (1, 2, 3, 4):  # every page edge falls somewhere in the tie group
        seen, pages = _walk(client, provider, "/orders/nearby", limit=limit, **query)
        assert seen == everything, limit
        assert all(p["totalCount"] is None and p["previousCursor"] is None for p in pages)
        assert pages[0]["hasPreviousPage"] is False
        assert all(p["hasPreviousPage"] for p in pages[1:])


def test_nearby_refuses_bad_cursors_and_limits(client: FlaskClient,
                                               db_session: Session) -> None:
    provider = UserFactory(provider=True, verified=True)
    for i in range(3):
        OrderFactory(latitude=CENTRE[0] + 0.001 * (i + 1), longitude=CENTRE[1])
    db_session.commit()
    query = {"latitude": CENTRE[0], "longitude": CENTRE[1], "radius": 3000}
    first = call(client, "GET", "/orders/nearby", provider,
                 query_string=query | {"limit": 1}).json["data"]
    cursor = first["pagination"]["nextCursor"]
    assert cursor
    for bad in BAD_QUERIES:
        _refused(client, provider, "/orders/nearby", query | bad(cursor))
    # Another list's cursor is signed with the same key, but its key is a time, not a distance.
    _refused(client, provider, "/orders/nearby", query | {"cursor": _orders_cursor(client,
                                                                                   provider)})
    # And a nearby cursor means nothing to another list.
    _refused(client, provider, "/orders", {"cursor": cursor})
