"""The latency fast path (issue 12) on a real worker, Redis broker and PostgreSQL: a commit sends
its outbox rows' follow-ups itself, so the matching chain runs with no drain at all; the drain
then publishes those rows without sending their follow-ups again; a direct send that never
reached the broker is still delivered by the drain; and a follow-up that arrives twice (the
drain read the row before its commit marked it) changes nothing the second time."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from flask import Flask
from sqlalchemy import select

from api import create_app
from db.models import Notification, OrderMatch, OutboxMessage, User
from domain.notifications import ORDER_INVITATION
from tasks.events import DRAIN_TASK, FOLLOWED_KEY
from tasks.matching import PASS_DUE_KEY
from tests.api.orders_helpers import order_body
from tests.auth_helpers import auth_headers
from tests.conftest import TEST_REDIS_URL, make_settings
from tests.waiting import poll as _wait
from workers.queues import MATCHING, NOTIFICATIONS

NYC = (40.7128, -74.0060)


def _broker() -> redis.Redis:
    return redis.Redis.from_url(TEST_REDIS_URL)


def _queued(queue: str, task: str, arg: str | None = None) -> int:
    """Messages of ``task`` (with ``arg`` as its one argument) waiting on ``queue``."""
    count = 0
    for raw in _broker().lrange(queue, 0, -1):
        headers = json.loads(raw)["headers"]
        count += headers["task"] == task and (arg is None or arg in headers["argsrepr"])
    return count


def _idle(*queues: str) -> bool:
    """Nothing waiting on ``queues`` and nothing a worker took but has not finished
    (``acks_late``: kombu keeps taken messages in ``unacked`` until the task returns)."""
    broker = _broker()
    return not any(broker.llen(q) for q in queues) and not broker.hlen("unacked")


def _api(app: Flask, method: str, path: str, user: User, body: Any = None,
         headers: dict[str, str] | None = None) -> Any:
    with app.test_client() as client:
        response = client.open(f"/api/v1{path}", method=method, json=body,
                               headers=auth_headers(user, app) | (headers or {}))
    assert response.status_code < 300, response.json
    return response.json["data"]


def _online(app: Flask, user: User, metres_north: float) -> None:
    _api(app, "PUT", "/providers/me/availability", user, {"online": True})
    _api(app, "PUT", "/providers/me/location", user,
         {"latitude": NYC[0] + metres_north / 111_195.0, "longitude": NYC[1]})


def _post_order(app: Flask, creator: User, request_id: str | None = None) -> str:
    headers = {"X-Request-ID": request_id} if request_id else None
    return str(_api(app, "POST", "/orders", creator, order_body(), headers)["order"]["id"])


def _rows(app: Flask, model: Any, **where: Any) -> list[Any]:
    with app.extensions["taplive"].db.transaction() as session:
        return list(session.scalars(select(model).filter_by(**where)))


def _invitations(app: Flask, order_id: str) -> list[Notification]:
    return _rows(app, Notification, order_id=order_id, kind=ORDER_INVITATION)


def _outbox(app: Flask, topic: str, aggregate_id: str) -> OutboxMessage:
    [row] = _rows(app, OutboxMessage, topic=topic, aggregate_id=aggregate_id)
    return row


def _drain(app: Flask) -> int:
    """One drain, in this process (what the kick or beat's sweep makes a worker run)."""
    with app.app_context():
        published: int = app.extensions["celery"].tasks[DRAIN_TASK].apply().get()
    return published


@pytest.fixture
def chain_worker(live_app: Flask, live_users: dict[str, User]) -> Iterator[Celery]:
    """A real worker on the chain's own queues (matching, notifications) but not ``default``,
    where the drain runs: kicks pile up there, unread, so whatever reaches the chain came
    straight from a commit."""
    _broker().flushdb()
    celery: Celery = live_app.extensions["celery"]
    with start_worker(celery, pool="solo", perform_ping_check=False, loglevel="WARNING",
                      queues=[MATCHING, NOTIFICATIONS], shutdown_timeout=20):
        yield celery


def test_the_chain_reaches_the_notification_without_any_drain(
        live_app: Flask, live_users: dict[str, User], chain_worker: Celery,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tasks.matching")
    _online(live_app, live_users["provider"], 100)
    _online(live_app, live_users["rival"], 300)
    order_id = _post_order(live_app, live_users["creator"], request_id="fast-path-1")

    notes = _wait(lambda: len(_invitations(live_app, order_id)) == 2
                  and _invitations(live_app, order_id))
    assert notes, "the chain never produced the notifications"
    assert {n.recipient_id for n in notes} == {live_users["provider"].id,
                                               live_users["rival"].id}
    # No drain ran: every outbox row is still unpublished, the kicks still wait for one...
    assert all(r.published_at is None for r in _rows(live_app, OutboxMessage))
    assert _queued("default", DRAIN_TASK) >= 1
    # ... and both steps' rows are marked as followed up.
    created = _outbox(live_app, "order:created", order_id)
    matched = _outbox(live_app, "order:matched", order_id)
    assert _broker().mget([FOLLOWED_KEY.format(created.id), FOLLOWED_KEY.format(matched.id)]
                          ) == [b"1", b"1"]
    # The direct send carries the request id, as the drain's does: the pass ran under it
    # (its log line, and the rows it wrote; the log line alone is at the mercy of whatever
    # an earlier test did to logging).
    assert matched.request_id == "fast-path-1"
    logged = [r for r in caplog.records if r.getMessage() == "order matched"]
    assert all(r.request_id == "fast-path-1" for r in logged)


def test_the_drain_publishes_a_followed_row_without_sending_its_follow_ups_again(
        live_app: Flask, live_users: dict[str, User]) -> None:
    """No worker: the queues show what was sent. A row its commit followed up is published
    with no second ``match_order``; a row whose mark is missing gets one from the drain."""
    _broker().flushdb()
    followed = _post_order(live_app, live_users["creator"])
    assert _queued(MATCHING, "matching.match_order", followed) == 1
    assert _drain(live_app) == 1
    assert _outbox(live_app, "order:created", followed).published_at is not None
    assert _queued(MATCHING, "matching.match_order", followed) == 1

    unmarked = _post_order(live_app, live_users["creator"])
    # The first order's pass is still due (no worker): this order is left to it.
    assert _queued(MATCHING, "matching.match_order", unmarked) == 0
    _broker().delete(FOLLOWED_KEY.format(_outbox(live_app, "order:created", unmarked).id))
    _broker().delete(PASS_DUE_KEY)  # as when that pass begins
    assert _drain(live_app) == 1
    assert _queued(MATCHING, "matching.match_order", unmarked) == 1
    assert _queued(MATCHING, "matching.match_order", followed) == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: a connection to it is refused


@pytest.fixture
def brokerless_app(pg_url: str) -> Iterator[Flask]:
    """The API on the same database and Redis, but with its broker on a closed port: every
    task it sends after a commit (direct follow-ups and the kick alike) is lost."""
    app = create_app(make_settings(
        pg_url, celery_broker_url=f"redis://127.0.0.1:{_closed_port()}/0"))
    yield app
    app.extensions["taplive"].close()


def test_a_follow_up_lost_at_commit_is_delivered_by_the_drain(
        live_app: Flask, live_users: dict[str, User], brokerless_app: Flask,
        live_worker: Celery) -> None:
    _online(live_app, live_users["provider"], 100)
    assert _wait(lambda: _idle("default"))  # no drain of earlier commits still to come
    started = time.monotonic()
    order_id = _post_order(brokerless_app, live_users["creator"])
    # The request pays one refused connection (kombu gives up after its connect timeout), not
    # one per task it would send: the direct follow-up fails, the kick is not tried.
    timeout = brokerless_app.extensions["celery"].conf.broker_connection_timeout
    assert time.monotonic() - started < 1.5 * timeout, "a dead broker stalled the request"
    row = _outbox(live_app, "order:created", order_id)
    assert not _broker().exists(FOLLOWED_KEY.format(row.id))
    time.sleep(0.5)  # nothing reaches the chain on its own
    assert _rows(live_app, OrderMatch, order_id=order_id) == []

    live_worker.send_task(DRAIN_TASK)  # what beat's outbox sweep sends every 10 s
    assert _wait(lambda: _invitations(live_app, order_id)), \
        "the drain did not deliver the lost follow-up"
    assert [m.provider_id for m in _rows(live_app, OrderMatch, order_id=order_id)] == [
        live_users["provider"].id]


def test_follow_ups_that_arrive_twice_invite_and_notify_once(
        live_app: Flask, live_users: dict[str, User]) -> None:
    """The race the design accepts: a drain reads a row before its commit marks it, so the
    follow-up runs twice. Forced here for both steps of the chain (marks deleted, drain run)."""
    _broker().flushdb()
    _online(live_app, live_users["provider"], 100)
    _online(live_app, live_users["rival"], 300)
    order_id = _post_order(live_app, live_users["creator"])
    created = _outbox(live_app, "order:created", order_id)
    _broker().delete(FOLLOWED_KEY.format(created.id))
    _broker().delete(PASS_DUE_KEY)  # no pass due: the drain sends one
    _drain(live_app)
    assert _queued(MATCHING, "matching.match_order", order_id) == 2

    celery: Celery = live_app.extensions["celery"]
    with start_worker(celery, pool="solo", perform_ping_check=False, loglevel="WARNING",
                      queues=[MATCHING, NOTIFICATIONS], shutdown_timeout=20):
        assert _wait(lambda: len(_invitations(live_app, order_id)) == 2)
        assert _wait(lambda: _idle(MATCHING, NOTIFICATIONS))
        matched = _outbox(live_app, "order:matched", order_id)  # one: the second run was a no-op
        _broker().delete(FOLLOWED_KEY.format(matched.id))
        _drain(live_app)  # sends notify_invited a second time
        assert _wait(lambda: _idle(MATCHING, NOTIFICATIONS))
        time.sleep(0.2)

    assert len(_rows(live_app, OrderMatch, order_id=order_id)) == 2
    assert len(_invitations(live_app, order_id)) == 2
    assert len(_rows(live_app, OutboxMessage, topic="order:matched", aggregate_id=order_id)) == 1


def test_matching_notifies_in_its_own_commit_and_sends_no_notify_task(
        live_app: Flask, live_users: dict[str, User]) -> None:
    """No worker: matching runs here. Its commit holds the invitations' notifications (pushed
    right after), so the ``order:matched`` row is marked followed with nothing sent."""
    _broker().flushdb()
    _online(live_app, live_users["provider"], 100)
    order_id = _post_order(live_app, live_users["creator"])
    with live_app.app_context():
        invited = live_app.extensions["celery"].tasks["matching.match_order"].apply(
            args=[order_id]).get()
    assert invited == 1
    [note] = _invitations(live_app, order_id)
    assert note.pushed_at is not None
    matched = _outbox(live_app, "order:matched", order_id)
    assert _broker().get(FOLLOWED_KEY.format(matched.id)) == b"1"
    assert _queued(NOTIFICATIONS, "notifications.notify_invited", order_id) == 0
    # A drain publishes the row and sends nothing for it either.
    _drain(live_app)
    assert _queued(NOTIFICATIONS, "notifications.notify_invited", order_id) == 0
