"""Batched dispatch (issue 16 part 2) on a real worker, Redis broker and PostgreSQL: orders that
arrive while a pass is due send no task of their own and are matched by that one pass, with
the invitations each would get alone."""

from __future__ import annotations

from celery import Celery
from celery.contrib.testing.worker import start_worker
from flask import Flask

from db.models import OrderMatch, OutboxMessage, User
from tasks.events import FOLLOWED_KEY
from tests.tasks.test_fast_path import (
    _broker,
    _idle,
    _invitations,
    _online,
    _outbox,
    _post_order,
    _queued,
    _rows,
)
from tests.waiting import poll as _wait
from workers.queues import MATCHING, NOTIFICATIONS


def test_orders_that_arrive_together_are_matched_by_one_pass(
        live_app: Flask, live_users: dict[str, User]) -> None:
    _broker().flushdb()
    _online(live_app, live_users["provider"], 100)
    _online(live_app, live_users["rival"], 300)
    orders = [_post_order(live_app, live_users["creator"]) for _ in range(6)]
    # No worker yet, as under a burst: the first order's commit asked for a pass; the others
    # found it due and sent nothing (the dispatch window), yet every row is followed up.
    assert _queued(MATCHING, "matching.match_order") == 1
    assert _queued(MATCHING, "matching.match_order", orders[0]) == 1
    created = [_outbox(live_app, "order:created", o) for o in orders]
    assert all(_broker().mget([FOLLOWED_KEY.format(row.id) for row in created]))
    celery: Celery = live_app.extensions["celery"]
    with start_worker(celery, pool="solo", perform_ping_check=False, loglevel="WARNING",
                      queues=[MATCHING, NOTIFICATIONS], shutdown_timeout=20):
        assert _wait(lambda: all(len(_invitations(live_app, o)) == 2 for o in orders))
        assert _wait(lambda: _idle(MATCHING, NOTIFICATIONS))
        # The pass began, so the window closed: the next order asks for a pass of its own.
        late = _post_order(live_app, live_users["creator"])
        assert _wait(lambda: len(_invitations(live_app, late)) == 2)
    matches = [m for m in _rows(live_app, OrderMatch) if str(m.order_id) in orders]
    # A pass stamps every row it writes with its own time: one time, one pass (not six).
    assert len({m.created_at for m in matches}) == 1
    assert {m.created_at for m in _rows(live_app, OrderMatch, order_id=late)} != {
        matches[0].created_at}
    for order_id in orders:
        ranked = sorted(_rows(live_app, OrderMatch, order_id=order_id), key=lambda m: m.rank)
        assert [(m.provider_id, m.rank) for m in ranked] == [
            (live_users["provider"].id, 1), (live_users["rival"].id, 2)]
        assert len(_rows(live_app, OutboxMessage, topic="order:matched",
                         aggregate_id=order_id)) == 1
        assert all(n.pushed_at is not None for n in _invitations(live_app, order_id))
