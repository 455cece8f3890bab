"""Order chat through the API: who may read and write, pages, what a message may contain, when
the chat is closed, the per-user rate limit, the outbox event, and the privacy rights."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import create_app
from core.enums import OrderStatus
from db.models import Notification, Order, OrderMessage, OutboxMessage, User
from tasks.push import notify
from tests.api.openapi_contract import published_contract
from tests.api.orders_helpers import accepted_order, call
from tests.auth_helpers import auth_headers
from tests.conftest import make_settings
from tests.factories import PASSWORD, OrderFactory, UserFactory

MAX_CHARS = 2000  # the default CHAT_MESSAGE_MAX_CHARS the suite's app runs with


@pytest.fixture
def people(db_session: Session, redis_client: redis.Redis) -> dict[str, User]:
    return {
        "creator": UserFactory(),
        "provider": UserFactory(provider=True, verified=True),
        "rival": UserFactory(provider=True, verified=True),
        "stranger": UserFactory(),
        "admin": UserFactory(admin=True),
    }


def path(order_id: object) -> str:
    return f"/orders/{order_id}/messages"


def post(client: FlaskClient, order_id: object, user: User, body: Any) -> Any:
    return call(client, "POST", path(order_id), user, body)


def taken(people: dict[str, User], status: OrderStatus = OrderStatus.ACCEPTED) -> Order:
    """An order of the creator assigned to the provider, in ``status``."""
    order: Order = OrderFactory(creator=people["creator"], provider_id=people["provider"].id,
                                status=status)
    return order


def test_the_two_parties_chat_and_each_post_writes_its_event(
        app: Flask, client: FlaskClient, people: dict[str, User], db_session: Session) -> None:
    creator, provider = people["creator"], people["provider"]
    order = accepted_order(client, creator, provider)
    contract = published_contract(app)
    documented = "/api/v1/orders/{order_id}/messages"

    first = post(client, order["id"], creator, {"body": "  Can you film the north pier?  "})
    assert first.status_code == 201, first.json
    sent = contract.check(first, "POST", documented)["message"]
    assert sent["body"] == "Can you film the north pier?"  # stored stripped
    assert sent["orderId"] == order["id"] and sent["senderId"] == str(creator.id)
    assert sent["deleted"] is False
    reply = post(client, order["id"], provider, {"body": "Yes.\nOn my way\tnow"})
    assert reply.status_code == 201, reply.json

    for reader in (creator, provider, people["admin"]):
        response = call(client, "GET", path(order["id"]), reader)
        page = contract.check(response, "GET", documented)
        assert [m["body"] for m in page["items"]] == ["Yes.\nOn my way\tnow",
                                                      "Can you film the north pier?"]
        assert page["items"][1] == sent  # one shape, whether posted or read
        assert page["pagination"]["totalCount"] == 2

    events = db_session.scalars(select(OutboxMessage).where(
        OutboxMessage.topic == "message:created").order_by(OutboxMessage.id)).all()
    assert [e.aggregate_id for e in events] == [order["id"], order["id"]]
    assert events[0].payload == {
        "event": "message:created", "orderId": order["id"], "senderId": str(creator.id),
        "recipientId": str(provider.id), "message": sent}
    assert events[1].payload["senderId"] == str(provider.id)
    assert events[1].payload["recipientId"] == str(creator.id)
    assert events[1].payload["message"] == reply.json["data"]["message"]


def test_only_participants_write_and_admins_only_read(
        client: FlaskClient, people: dict[str, User]) -> None:
    order = taken(people)
    pending = OrderFactory(creator=people["creator"])
    hello = {"body": "hello"}
    # Whoever may not see the order learns nothing about it, as with GET /orders/{id}.
    for outsider in (people["stranger"], people["rival"]):
        for method in ("GET", "POST"):
            response = call(client, method, path(order.id), outsider, hello)
            assert response.status_code == 404, (outsider.role, method)
            assert response.json["error"]["code"] == "NOT_FOUND"
    # A provider may see a pending order (to apply), but its chat is not theirs.
    for method in ("GET", "POST"):
        refused = call(client, method, path(pending.id), people["rival"], hello)
        assert refused.status_code == 403 and refused.json["error"]["code"] == (
            "NOT_A_PARTICIPANT")
    assert call(client, "GET", path(order.id), people["admin"]).status_code == 200
    admin_post = post(client, order.id, people["admin"], hello)
    assert admin_post.status_code == 403
    assert admin_post.json["error"]["code"] == "NOT_A_PARTICIPANT"
    # Unknown, malformed, anonymous.
    assert call(client, "GET", path(uuid.uuid4()), people["creator"]).status_code == 404
    assert post(client, uuid.uuid4(), people["creator"], hello).status_code == 404
    assert call(client, "GET", path("not-a-uuid"), people["creator"]).status_code == 404
    anonymous = call(client, "POST", path(order.id), None, hello)
    assert anonymous.status_code == 401 and anonymous.json["error"]["code"] == "UNAUTHORIZED"
    assert post(client, order.id, people["provider"], hello).status_code == 201


def test_pages_newest_first_with_signed_cursors(
        client: FlaskClient, people: dict[str, User], db_session: Session) -> None:
    order = taken(people)
    other = taken(people)  # another conversation never leaks into this one
    start = datetime(2026, 12, 1, 12, tzinfo=UTC)
    for i in range(25):
        sender = people["creator"] if i % 2 else people["provider"]
        db_session.add(OrderMessage(order_id=order.id, sender_id=sender.id, body=f"m{i}",
                                    created_at=start + timedelta(seconds=i)))
    db_session.add(OrderMessage(order_id=other.id, sender_id=people["creator"].id,
                                body="elsewhere", created_at=start))
    db_session.flush()

    def page(**query: Any) -> dict[str, Any]:
        response = client.get(f"/api/v1{path(order.id)}", query_string=query,
                              headers=auth_headers(people["creator"]))
        assert response.status_code == 200, response.json
        data: dict[str, Any] = response.json["data"]
        return data

    seen: list[str] = []
    cursor = None
    pages = []
    while True:
        current = page(limit=10, **({"cursor": cursor} if cursor else {}))
        pages.append(current)
        seen += [m["body"] for m in current["items"]]
        assert current["pagination"]["totalCount"] == 25
        cursor = current["pagination"]["nextCursor"]
        if cursor is None:
            break
    assert seen == [f"m{i}" for i in range(24, -1, -1)]
    assert [len(p["items"]) for p in pages] == [10, 10, 5]
    assert pages[0]["pagination"]["hasPreviousPage"] is False
    assert pages[2]["pagination"]["hasNextPage"] is False
    # Back from the last page: the previous cursor gives the middle page again.
    back = page(limit=10, cursor=pages[2]["pagination"]["previousCursor"])
    assert back["items"] == pages[1]["items"]

    for bad in ("garbage", pages[1]["pagination"]["nextCursor"][:-2] + "xx"):
        response = client.get(f"/api/v1{path(order.id)}", query_string={"cursor": bad},
                              headers=auth_headers(people["creator"]))
        assert response.status_code == 400 and response.json["error"]["code"] == (
            "INVALID_CURSOR")
    for limit in (0, 101, "many"):
        response = client.get(f"/api/v1{path(order.id)}", query_string={"limit": limit},
                              headers=auth_headers(people["creator"]))
        assert response.status_code == 400
        assert response.json["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("body", [
    {"body": ""},
    {"body": " \n\t  "},  # whitespace only
    {"body": "x" * (MAX_CHARS + 1)},
    {"body": "a\x00b"},  # NUL
    {"body": "bell\x07"},
    {"body": "\x1b[31mred"},  # a terminal escape sequence
    {"body": "carriage\rreturn"},  # a bare CR (CRLF is fine, see below)
    {"body": "del\x7f"},
    {"body": "c1\x85control"},
    {"body": 42},
    {"body": None},
    {"body": ["hello"]},
    {"body": {"text": "hello"}},
    {},
    {"body": "hello", "attachments": []},  # unknown field
])
def test_what_a_message_may_not_be(client: FlaskClient, people: dict[str, User],
                                   db_session: Session, body: dict[str, Any]) -> None:
    order = taken(people)
    response = post(client, order.id, people["creator"], body)
    assert response.status_code == 400, response.json
    assert response.json["success"] is False
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert set(response.json["error"]["details"]) == ({"attachments"} if "attachments" in body
                                                      else {"body"})
    assert db_session.scalars(select(OrderMessage)).all() == []
    assert db_session.scalars(select(OutboxMessage).where(
        OutboxMessage.topic == "message:created")).all() == []


def test_a_lone_surrogate_is_refused_not_a_crash(client: FlaskClient,
                                                 people: dict[str, User]) -> None:
    order = taken(people)
    response = client.post(f"/api/v1{path(order.id)}", data='{"body": "half \\ud800 a pair"}',
                           content_type="application/json",
                           headers=auth_headers(people["creator"]))
    assert response.status_code == 400 and response.json["error"]["code"] == "VALIDATION_ERROR"


def test_what_a_message_may_be(client: FlaskClient, people: dict[str, User]) -> None:
    order = taken(people)
    cases = [
        ("  " + "y" * MAX_CHARS + "\n ", "y" * MAX_CHARS),  # the limit counts after stripping
        ("line one\r\nline two", "line one\nline two"),  # Windows line ends become \n
        ("tab\tseparated\nand 🎥 emoji, ünïcödé", "tab\tseparated\nand 🎥 emoji, ünïcödé"),
        ("🎥" * MAX_CHARS, "🎥" * MAX_CHARS),  # characters, not bytes
    ]
    for sent, stored in cases:
        response = post(client, order.id, people["creator"], {"body": sent})
        assert response.status_code == 201, response.json
        assert response.json["data"]["message"]["body"] == stored


@pytest.mark.parametrize("status", [OrderStatus.ACCEPTED, OrderStatus.ACTIVE,
                                    OrderStatus.COMPLETED, OrderStatus.DISPUTED])
def test_the_chat_is_open_once_a_provider_is_assigned(
        client: FlaskClient, people: dict[str, User], status: OrderStatus) -> None:
    order = taken(people, status)
    assert post(client, order.id, people["creator"], {"body": "hi"}).status_code == 201
    assert post(client, order.id, people["provider"], {"body": "hi"}).status_code == 201


def test_the_chat_is_closed_before_a_provider_and_after_a_cancellation(
        client: FlaskClient, people: dict[str, User], db_session: Session) -> None:
    pending = OrderFactory(creator=people["creator"])
    refused = post(client, pending.id, people["creator"], {"body": "anyone there?"})
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "CHAT_CLOSED"
    assert refused.json["error"]["details"] == {"status": "pending"}

    cancelled = taken(people, OrderStatus.CANCELLED)
    db_session.add(OrderMessage(order_id=cancelled.id, sender_id=people["provider"].id,
                                body="running late", created_at=datetime.now(UTC)))
    db_session.flush()
    for who in (people["creator"], people["provider"]):
        closed = post(client, cancelled.id, who, {"body": "why?"})
        assert closed.status_code == 409 and closed.json["error"]["code"] == "CHAT_CLOSED"
        # The history stays readable.
        history = call(client, "GET", path(cancelled.id), who)
        assert [m["body"] for m in history.json["data"]["items"]] == ["running late"]


@pytest.fixture
def limited_client(pg_url: str, db_session: Session,
                   redis_client: redis.Redis) -> Iterator[FlaskClient]:
    """A client of an app with the limits on and a tiny chat budget, on the test's
    connection (rolled back with it)."""
    limited = create_app(make_settings(pg_url, rate_limit_enabled=True,
                                       rate_limit_chat_messages="3 per minute"))
    database = limited.extensions["taplive"].db
    database.bind_to_connection(db_session.connection())
    try:
        yield limited.test_client()
    finally:
        database.unbind()


def test_posting_is_rate_limited_per_user(limited_client: FlaskClient, people: dict[str, User],
                                          db_session: Session) -> None:
    order = taken(people)
    db_session.commit()
    creator, provider = people["creator"], people["provider"]
    for i in range(3):
        assert post(limited_client, order.id, creator, {"body": f"{i}"}).status_code == 201
    refused = post(limited_client, order.id, creator, {"body": "one more"})
    assert refused.status_code == 429
    assert refused.json["success"] is False
    assert refused.json["error"]["code"] == "RATE_LIMITED"
    assert refused.json["meta"]["requestId"]
    assert 0 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Limit"] == "3"
    # Reading is not a post, and the other party has a budget of their own.
    assert call(limited_client, "GET", path(order.id), creator).status_code == 200
    assert post(limited_client, order.id, provider, {"body": "slow down"}).status_code == 201
    assert db_session.scalars(select(OrderMessage.body).where(
        OrderMessage.sender_id == creator.id).order_by(OrderMessage.created_at)).all() == [
        "0", "1", "2"]


def test_export_includes_the_conversations(client: FlaskClient, people: dict[str, User]) -> None:
    order = taken(people)
    elsewhere = OrderFactory(creator=people["stranger"], provider_id=people["rival"].id,
                             status=OrderStatus.ACCEPTED)
    post(client, order.id, people["creator"], {"body": "see you at eight"})
    post(client, order.id, people["provider"], {"body": "eight it is"})
    post(client, elsewhere.id, people["stranger"], {"body": "not about you"})

    export = call(client, "GET", "/users/me/export", people["provider"]).json["data"]
    rows = export["messages"]
    assert [(m["sender_id"], m["body"]) for m in rows] == [
        (str(people["creator"].id), "see you at eight"),
        (str(people["provider"].id), "eight it is")]
    assert {m["order_id"] for m in rows} == {str(order.id)}
    assert rows[0]["created_at"].endswith("+00:00") and rows[0]["deleted_at"] is None


def test_erasure_scrubs_my_messages_and_keeps_the_conversation(
        client: FlaskClient, people: dict[str, User], db_session: Session) -> None:
    creator, provider = people["creator"], people["provider"]
    order = taken(people)
    mine = post(client, order.id, creator, {"body": "my flat is at Rua Augusta 12"})
    theirs = post(client, order.id, provider, {"body": "got it"})
    # The relay turned the events into notifications (message:sent, message:received).
    notify(db_session, list(db_session.scalars(select(OutboxMessage).where(
        OutboxMessage.topic == "message:created"))))
    assert "Rua Augusta" in str([n.payload for n in db_session.scalars(select(Notification))])
    order.status = OrderStatus.COMPLETED  # erasure waits for open orders
    db_session.commit()

    erased = call(client, "DELETE", "/users/me", creator, {"password": PASSWORD})
    assert erased.status_code == 200, erased.json

    items = call(client, "GET", path(order.id), provider).json["data"]["items"]
    scrubbed = mine.json["data"]["message"] | {"body": None, "deleted": True}
    assert items == [theirs.json["data"]["message"], scrubbed]
    row = db_session.get(OrderMessage, uuid.UUID(scrubbed["id"]))
    assert row is not None and row.body is None and row.deleted_at is not None
    # The outbox keeps the event (its id is what clients de-duplicate on), not the words.
    payloads = [e.payload for e in db_session.scalars(select(OutboxMessage).where(
        OutboxMessage.topic == "message:created").order_by(OutboxMessage.id))]
    assert [p["message"] for p in payloads] == [scrubbed, theirs.json["data"]["message"]]
    assert "Rua Augusta" not in str([e.payload for e in db_session.scalars(
        select(OutboxMessage))])
    notes = list(db_session.scalars(select(Notification)))
    assert {n.event for n in notes} == {"message:sent", "message:received"}
    assert "Rua Augusta" not in str([n.payload for n in notes])
