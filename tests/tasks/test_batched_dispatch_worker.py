"""Batched dispatch (issue 16 part 2) on a real worker, Redis broker and PostgreSQL: orders whose
match tasks queued up together are matched by one pass, with the invitations each would get
alone; the other tasks find their orders matched and write nothing."""

from __future__ import annotations

from celery import Celery
from celery.contrib.testing.worker import start_worker
from flask import Flask

from db.models import OrderMatch, OutboxMessage, User
from tests.tasks.test_fast_path import (
    _broker,
    _idle,
    _invitations,
    _online,
    _post_order,
    _queued,
    _rows,
)
from tests.waiting import poll as _wait
from workers.queues import MATCHING, NOTIFICATIONS


def test_orders_queued_together_are_matched_in_one_pass(
        live_app: Flask, live_users: dict[str, User]) -> None:
    _broker().flushdb()
    _online(live_app, live_users["provider"], 100)
    _online(live_app, live_users["rival"], 300)
    orders = [_post_order(live_app, live_users["creator"]) for _ in range(6)]
    # No worker yet: every order's task waits on the queue, as under a burst.
    assert _queued(MATCHING, "matching.match_order") == len(orders)
    celery: Celery = live_app.extensions["celery"]
    with start_worker(celery, pool="solo", perform_ping_check=False, loglevel="WARNING",
                      queues=[MATCHING, NOTIFICATIONS], shutdown_timeout=20):
        assert _wait(lambda: all(len(_invitations(live_app, o)) == 2 for o in orders))
        assert _wait(lambda: _idle(MATCHING, NOTIFICATIONS))
    matches = _rows(live_app, OrderMatch)
    # A pass stamps every row it writes with its own time: one time, one pass (not six).
    assert len({m.created_at for m in matches}) == 1
    for order_id in orders:
        ranked = sorted(_rows(live_app, OrderMatch, order_id=order_id), key=lambda m: m.rank)
        assert [(m.provider_id, m.rank) for m in ranked] == [
            (live_users["provider"].id, 1), (live_users["rival"].id, 2)]
        assert len(_rows(live_app, OutboxMessage, topic="order:matched",
                         aggregate_id=order_id)) == 1
        assert all(n.pushed_at is not None for n in _invitations(live_app, order_id))
