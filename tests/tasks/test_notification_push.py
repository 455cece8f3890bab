"""Notifications are never lost: written once by the relay, pushed after commit, and pushed by
the sweep when the push after commit never happened (a crash between the two)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from celery import Celery
from flask import Flask
from sqlalchemy import func, select, update

from core.notifier import SOCKETIO_CHANNEL, user_room
from db.models import Notification, OutboxMessage, User
from domain import notifications
from domain.notifications import Delivery
from domain.push import stream_key
from tasks.events import DRAIN_TASK
from tests.api.orders_helpers import order_body
from tests.auth_helpers import auth_headers
from tests.conftest import TEST_REDIS_URL


def _emits(pubsub: Any, want: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """What emitters published for the real-time server (python-socketio sends JSON)."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < want and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            found.append(json.loads(message["data"]))
    return found


def _count(app: Flask, **where: Any) -> int:
    with app.extensions["taplive"].db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Notification)
                                  .filter_by(**where)) or 0)


def test_the_relay_writes_each_notification_once_and_pushes_it(
        live_app: Flask, live_users: dict[str, User]) -> None:
    celery: Celery = live_app.extensions["celery"]
    creator = live_users["creator"]
    with live_app.test_client() as client:
        response = client.post("/api/v1/orders", json=order_body(),
                               headers=auth_headers(creator, live_app))
    assert response.status_code == 201
    pubsub = redis.Redis.from_url(TEST_REDIS_URL).pubsub()
    pubsub.subscribe(SOCKETIO_CHANNEL)
    celery.tasks[DRAIN_TASK].apply()  # the relay, run here
    [emitted] = _emits(pubsub, 1)
    assert emitted["event"] == "order:created" and emitted["room"] == user_room(creator.id)
    event, offset = emitted["data"]
    assert event["orderId"] == response.json["data"]["order"]["id"]
    assert _count(live_app, recipient_id=creator.id) == 1
    assert _count(live_app, pushed_at=None) == 0
    client_redis = redis.Redis.from_url(TEST_REDIS_URL)
    assert [e[0].decode() for e in client_redis.xrange(stream_key(creator.id))] == [offset]
    # The relay runs again over the same rows (as after a crash before it marked them):
    # nothing is written twice.
    with live_app.extensions["taplive"].db.transaction() as session:
        session.execute(update(OutboxMessage).values(published_at=None))
    celery.tasks[DRAIN_TASK].apply()
    assert _count(live_app, recipient_id=creator.id) == 1


def test_a_lost_push_is_pushed_by_the_sweep(live_app: Flask,
                                            live_users: dict[str, User]) -> None:
    celery: Celery = live_app.extensions["celery"]
    provider = live_users["provider"]
    database = live_app.extensions["taplive"].db
    old = datetime.now(UTC) - timedelta(seconds=30)
    with database.transaction() as session:  # committed, never pushed: the "crash"
        notifications.record(session, [Delivery(
            provider.id, "order:accepted", f"evt_{uuid.uuid4().hex}", "order:accepted", None,
            {"orderId": None, "n": i}) for i in range(3)], old)
        fresh = notifications.record(session, [Delivery(
            provider.id, "order:updated", "evt_fresh", "order:updated", None, {})],
            datetime.now(UTC))
    pubsub = redis.Redis.from_url(TEST_REDIS_URL).pubsub()
    pubsub.subscribe(SOCKETIO_CHANNEL)
    assert celery.tasks["notifications.push_pending"].apply().get() == 3
    assert sorted(e["data"][0]["payload"]["n"] for e in _emits(pubsub, 3)) == [0, 1, 2]
    # The one just written is its own task's to push (within the grace), not the sweep's.
    assert _count(live_app, pushed_at=None) == 1
    with database.transaction() as session:
        assert session.scalar(select(Notification.pushed_at).where(
            Notification.id == fresh[0].id)) is None
    assert celery.tasks["notifications.push_pending"].apply().get() == 0
