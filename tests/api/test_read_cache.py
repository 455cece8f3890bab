"""The order read caches: hits are served, and no write is ever read stale after it."""

from __future__ import annotations

import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.models import Order
from domain.events import ORDER_VIEW_CHANGED
from domain.order_cache import ALL_VERSION
from tests.api.orders_helpers import call, create_order
from tests.auth_helpers import auth_headers
from tests.factories import PASSWORD, OrderFactory, UserFactory


def _sneak_title(db_session: Session, order_id: str, title: str) -> None:
    """Change a row behind the API's back (no domain event): only a cached read misses it."""
    db_session.execute(update(Order).where(Order.id == order_id).values(title=title))
    db_session.flush()


def test_a_read_is_cached_and_the_next_write_is_seen_at_once(client: FlaskClient,
                                                             db_session: Session) -> None:
    creator = UserFactory()
    order = create_order(client, creator)
    path = f"/orders/{order['id']}"
    assert call(client, "GET", path, creator).json["data"]["order"]["title"] == order["title"]
    _sneak_title(db_session, order["id"], "changed behind the cache")
    assert call(client, "GET", path, creator).json["data"]["order"]["title"] == order["title"]

    edited = call(client, "PUT", path, creator, {"title": "Edited through the API"})
    assert edited.status_code == 200
    assert call(client, "GET", path, creator).json["data"]["order"]["title"] == (
        "Edited through the API")


def test_my_orders_show_my_new_order_at_once(client: FlaskClient, db_session: Session) -> None:
    creator = UserFactory()
    first = create_order(client, creator)
    listed = call(client, "GET", "/orders", creator).json["data"]["items"]
    assert [o["id"] for o in listed] == [first["id"]]
    _sneak_title(db_session, first["id"], "changed behind the cache")
    assert call(client, "GET", "/orders", creator).json["data"]["items"] == listed  # a hit

    second = create_order(client, creator)
    listed = call(client, "GET", "/orders", creator).json["data"]["items"]
    assert [o["id"] for o in listed] == [second["id"], first["id"]]
    # Other arguments are other entries.
    assert call(client, "GET", "/orders?limit=1", creator).json["data"]["items"][0]["id"] == (
        second["id"])


def test_who_may_see_a_cached_order_is_checked_every_time(client: FlaskClient,
                                                          db_session: Session) -> None:
    creator, stranger = UserFactory(), UserFactory()
    provider = UserFactory(provider=True, verified=True)
    order = create_order(client, creator)
    path = f"/orders/{order['id']}"
    assert call(client, "GET", path, creator).status_code == 200  # now cached
    assert call(client, "GET", path, provider).status_code == 200  # pending: may apply
    assert call(client, "GET", path, stranger).status_code == 404  # another creator
    assert call(client, "POST", f"{path}/cancel", creator, {"reason": "rain"}).status_code == 200
    assert call(client, "GET", path, provider).status_code == 404  # no longer pending
    assert call(client, "GET", path, creator).json["data"]["order"]["status"] == "cancelled"
    assert call(client, "GET", "/orders/00000000-0000-0000-0000-000000000000",
                creator).status_code == 404


def test_erasure_invalidates_every_cached_order(app: Flask) -> None:
    """Erasure scrubs orders other people may hold cached: it bumps the global version."""
    database = app.extensions["taplive"].db
    client: redis.Redis = app.extensions["taplive"].redis
    before = int(client.get(ALL_VERSION) or 0)
    session = database.session()
    try:
        from sqlalchemy import text

        from db.session import note_for_commit

        session.execute(text("SELECT 1"))
        note_for_commit(session, ORDER_VIEW_CHANGED, ("*",))
        session.commit()
    finally:
        database.session.remove()
    assert int(client.get(ALL_VERSION) or 0) == before + 1


def test_an_erased_creators_words_leave_the_counterpartys_cached_order(
        client: FlaskClient, db_session: Session) -> None:
    creator = UserFactory()
    provider = UserFactory(provider=True, verified=True)
    order = OrderFactory(creator=creator, provider_id=provider.id,
                         status=OrderStatus.COMPLETED, description="Meet me at Rua Augusta 12")
    db_session.commit()
    path = f"/orders/{order.id}"
    seen = call(client, "GET", path, provider).json["data"]["order"]
    assert seen["description"] == "Meet me at Rua Augusta 12"  # and now cached
    erased = client.delete("/api/v1/users/me", headers=auth_headers(creator),
                           json={"password": PASSWORD})
    assert erased.status_code == 200
    assert call(client, "GET", path, provider).json["data"]["order"]["description"] is None

