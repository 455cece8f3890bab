"""The transactional outbox with a real worker: events are published after commit, carry the
request id, and a crash between commit and publish is repaired by the sweep."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Celery
from flask import Flask
from sqlalchemy import func, select

from core.publisher import EVENTS_CHANNEL
from db.models import OutboxMessage, User
from domain import orders
from tasks.events import DRAIN_TASK, KICK_KEY
from tests.api.orders_helpers import order_body
from tests.auth_helpers import auth_headers
from tests.conftest import TEST_REDIS_URL


def _messages(pubsub: Any, want: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < want and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            found.append(json.loads(message["data"]))
    return found


def test_committed_change_is_published_with_its_request_id(
        live_app: Flask, live_users: dict[str, User], live_worker: Celery) -> None:
    pubsub = redis.Redis.from_url(TEST_REDIS_URL).pubsub()
    pubsub.subscribe(EVENTS_CHANNEL)
    with live_app.test_client() as client:
        response = client.post("/api/v1/orders", json=order_body(),
                               headers=auth_headers(live_users["creator"], live_app)
                               | {"X-Request-ID": "outbox-trace-1"})
    assert response.status_code == 201
    [event] = _messages(pubsub, 1)
    assert event["topic"] == "order:created"
    assert event["aggregateId"] == response.json["data"]["order"]["id"]
    assert event["requestId"] == "outbox-trace-1"
    assert event["payload"]["status"] == "pending"


def test_rolled_back_change_publishes_nothing(live_app: Flask, live_users: dict[str, User],
                                              live_worker: Celery) -> None:
    pubsub = redis.Redis.from_url(TEST_REDIS_URL).pubsub()
    pubsub.subscribe(EVENTS_CHANNEL)
    with live_app.test_client() as client:
        bad = client.post("/api/v1/orders", json=order_body(baseAmount="1.001"),
                          headers=auth_headers(live_users["creator"], live_app))
    assert bad.status_code == 400
    assert _messages(pubsub, 1, timeout=2.0) == []


def test_crash_between_commit_and_publish_is_repaired_by_the_sweep(
        live_app: Flask, live_users: dict[str, User], live_worker: Celery) -> None:
    database = live_app.extensions["taplive"].db
    hooks, database._after_commit = database._after_commit, []  # the "crash": no kick
    try:
        with live_app.app_context(), database.transaction() as session:
            creator = session.get(User, live_users["creator"].id)
            assert creator is not None
            orders.create_order(session, creator.id, orders.OrderDraft(
                title="t", latitude=1.0, longitude=1.0, base_amount_minor=100,
                currency="USD"), orders.OrderRules(), datetime.now(UTC))
    finally:
        database._after_commit = hooks
    with database.transaction() as session:
        assert session.scalar(select(func.count()).where(
            OutboxMessage.published_at.is_(None))) == 1
    pubsub = redis.Redis.from_url(TEST_REDIS_URL).pubsub()
    pubsub.subscribe(EVENTS_CHANNEL)
    live_worker.send_task(DRAIN_TASK)  # what beat's events-sweep-outbox entry sends every 10 s
    [event] = _messages(pubsub, 1)
    assert event["topic"] == "order:created"

    def unpublished() -> int:
        with database.transaction() as session:
            return int(session.scalar(select(func.count()).where(
                OutboxMessage.published_at.is_(None))) or 0)

    # The relay publishes, enqueues the follow-ups (order:created -> matching.match_order),
    # then commits: the row is marked a moment after the event is seen.
    deadline = time.monotonic() + 10
    while unpublished() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert unpublished() == 0
    # Draining again publishes nothing twice.
    live_worker.send_task(DRAIN_TASK)
    assert _messages(pubsub, 1, timeout=2.0) == []


def _queued_drains() -> int:
    broker = redis.Redis.from_url(TEST_REDIS_URL)
    return sum(json.loads(raw)["headers"]["task"] == DRAIN_TASK
               for raw in broker.lrange("default", 0, -1))


def test_a_burst_of_commits_sends_one_kick_and_loses_no_event(
        live_app: Flask, live_users: dict[str, User]) -> None:
    """No worker yet: five creates queue one drain, not five. The drain clears the flag before
    it reads, so it publishes all five, and the next commit kicks again."""
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    headers = auth_headers(live_users["creator"], live_app)
    with live_app.test_client() as client:
        for _ in range(5):
            assert client.post("/api/v1/orders", json=order_body(),
                               headers=headers).status_code == 201
        assert _queued_drains() == 1
        assert redis.Redis.from_url(TEST_REDIS_URL).exists(KICK_KEY)

        pubsub = redis.Redis.from_url(TEST_REDIS_URL).pubsub()
        pubsub.subscribe(EVENTS_CHANNEL)
        with live_app.app_context():
            assert live_app.extensions["celery"].tasks[DRAIN_TASK].apply().get() == 5
        assert len(_messages(pubsub, 5)) == 5
        assert not redis.Redis.from_url(TEST_REDIS_URL).exists(KICK_KEY)

        assert client.post("/api/v1/orders", json=order_body(),
                           headers=headers).status_code == 201
        assert _queued_drains() == 2


def test_every_event_of_a_burst_is_published_by_a_real_worker(
        live_app: Flask, live_users: dict[str, User], live_worker: Celery) -> None:
    pubsub = redis.Redis.from_url(TEST_REDIS_URL).pubsub()
    pubsub.subscribe(EVENTS_CHANNEL)
    headers = auth_headers(live_users["creator"], live_app)
    with live_app.test_client() as client:
        ids = {client.post("/api/v1/orders", json=order_body(),
                           headers=headers).json["data"]["order"]["id"] for _ in range(12)}
    published = _messages(pubsub, 12)
    assert {event["aggregateId"] for event in published} == ids


def test_rows_stored_in_the_old_flat_shape_are_published_in_todays(
        live_app: Flask, live_users: dict[str, User]) -> None:
    """Outbox rows written before the one projection (order facts flat) still drain, and
    subscribers get them in the shape they get everything else in."""
    database = live_app.extensions["taplive"].db
    old = {"orderId": "o-old", "status": "pending", "creatorId": str(live_users["creator"].id),
           "providerId": None, "latitude": 1.5, "longitude": 2.5, "serviceRadius": 500,
           "version": 1, "event": "order:updated", "actor": "creator"}
    with database.transaction() as session:
        session.add(OutboxMessage(topic="order:updated", aggregate_id="o-old", payload=old,
                                  created_at=datetime.now(UTC), attempts=0))
    pubsub = redis.Redis.from_url(TEST_REDIS_URL).pubsub()
    pubsub.subscribe(EVENTS_CHANNEL)
    with live_app.app_context():
        assert live_app.extensions["celery"].tasks[DRAIN_TASK].apply().get() >= 1
    [event] = [e for e in _messages(pubsub, 1) if e["aggregateId"] == "o-old"]
    assert event["payload"]["order"] == {
        "id": "o-old", "status": "pending", "creatorId": old["creatorId"], "providerId": None,
        "location": {"latitude": 1.5, "longitude": 2.5}, "serviceRadius": 500}
    assert "latitude" not in event["payload"]
