"""GET /notifications and POST /notifications/read: catching up on what was pushed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Notification, User
from domain import notifications
from domain.notifications import Delivery
from tests.api.orders_helpers import call
from tests.factories import OrderFactory, UserFactory

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _told(session: Session, user: User, count: int, *, event: str = "order:accepted"
          ) -> list[uuid.UUID]:
    order = OrderFactory(creator=user)
    session.flush()
    ids: list[uuid.UUID] = []
    for i in range(count):
        ids += [row.id for row in notifications.record(session, [Delivery(
            user.id, event, f"evt_{uuid.uuid4().hex}", event, order.id,
            {"orderId": str(order.id), "n": i})], T0 + timedelta(seconds=i))]
    session.commit()
    return ids


def _page(client: FlaskClient, user: User, query: str = "") -> dict[str, Any]:
    response = call(client, "GET", f"/notifications{query}", user)
    assert response.status_code == 200, response.json
    data: dict[str, Any] = response.json["data"]
    return data


def test_my_notifications_page_newest_first_and_nobody_elses(
        client: FlaskClient, db_session: Session) -> None:
    me, other = UserFactory(), UserFactory()
    _told(db_session, me, 5)
    _told(db_session, other, 2)
    first = _page(client, me, "?limit=2")
    assert [n["payload"]["n"] for n in first["items"]] == [4, 3]
    assert first["pagination"]["hasNextPage"] and first["pagination"]["totalCount"] == 5
    second = _page(client, me, f"?limit=2&cursor={first['pagination']['nextCursor']}")
    assert [n["payload"]["n"] for n in second["items"]] == [2, 1]
    item = first["items"][0]
    assert set(item) == {"id", "event", "orderId", "at", "payload", "notificationId",
                         "readAt"}
    assert item["event"] == "order:accepted" and item["readAt"] is None


def test_marking_read_by_id_and_all(client: FlaskClient, db_session: Session) -> None:
    me, other = UserFactory(), UserFactory()
    mine = _told(db_session, me, 3)
    theirs = _told(db_session, other, 1)
    response = call(client, "POST", "/notifications/read", me,
                    {"ids": [str(mine[0]), str(theirs[0]), str(uuid.uuid4())]})
    assert response.status_code == 200 and response.json["data"] == {"marked": 1}
    unread = _page(client, me, "?unread=true")
    assert {n["notificationId"] for n in unread["items"]} == {str(i) for i in mine[1:]}
    # Somebody else's notification is untouched.
    assert db_session.scalar(select(Notification.read_at).where(
        Notification.id == theirs[0])) is None
    assert call(client, "POST", "/notifications/read", me,
                {"all": True}).json["data"] == {"marked": 2}
    assert _page(client, me, "?unread=true")["items"] == []
    # Again: nothing left to mark.
    assert call(client, "POST", "/notifications/read", me,
                {"all": True}).json["data"] == {"marked": 0}


@pytest.mark.parametrize("body", [
    {}, {"ids": []}, {"ids": ["nope"]}, {"ids": "x"}, {"all": False},
    {"all": "yes"}, {"all": True, "ids": [str(uuid.uuid4())]},
    {"ids": [str(uuid.uuid4())] * 501}, {"extra": 1}, [1], None,
])
def test_bad_mark_read_requests_get_a_400(client: FlaskClient, db_session: Session,
                                          body: Any) -> None:
    me = UserFactory()
    db_session.commit()
    response = call(client, "POST", "/notifications/read", me, body)
    assert response.status_code in (400, 415), response.json
    assert response.json["success"] is False
    assert response.json["error"]["code"] in ("VALIDATION_ERROR", "UNSUPPORTED_MEDIA_TYPE",
                                              "BAD_REQUEST")


@pytest.mark.parametrize("query", ["?limit=0", "?limit=101", "?unread=maybe",
                                   "?cursor=forged", "?limit=x"])
def test_bad_list_queries_get_a_400(client: FlaskClient, db_session: Session,
                                    query: str) -> None:
    me = UserFactory()
    db_session.commit()
    response = call(client, "GET", f"/notifications{query}", me)
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] in ("VALIDATION_ERROR", "INVALID_CURSOR")


def test_notifications_need_a_token(client: FlaskClient) -> None:
    assert call(client, "GET", "/notifications").status_code == 401
    assert call(client, "POST", "/notifications/read", json={"all": True}).status_code == 401
