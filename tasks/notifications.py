"""Notification tasks (queue ``notifications``): many and small, never behind matching."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from celery import shared_task

from domain import notifications
from tasks.base import ServicesTask
from tasks.matching import RETRY, parse_id
from tasks.push import PendingPush, push_after_commit

log = logging.getLogger(__name__)
PUSH_SWEEP_BATCH = 500
#: A row this old and still unpushed lost its push (the pushing task pushes right after its
#: commit, within milliseconds).
PUSH_GRACE_S = 5.0


@shared_task(name="notifications.notify_invited", bind=True, time_limit=30, soft_time_limit=20,
             ignore_result=True, **RETRY)
def notify_invited(self: ServicesTask, order_id: str) -> int:
    """Follow-up of ``order:matched``: an invitation notification for each invited provider
    not told yet, pushed after commit. Returns how many were notified by this run."""
    oid = parse_id(order_id)
    if oid is None:
        return 0
    svc = self.services
    with svc.db.transaction() as session:
        pending = PendingPush().add_rows(
            notifications.notify_invited(session, oid, datetime.now(UTC)))
    push_after_commit(svc, pending)
    return len(pending.ids)


@shared_task(name="notifications.notify_offer", bind=True, time_limit=30, soft_time_limit=20,
             ignore_result=True, **RETRY)
def notify_offer(self: ServicesTask, match_id: str) -> bool:
    """Follow-up of ``dispatch:offered``: the offer's notification, once, pushed."""
    mid = parse_id(match_id)
    if mid is None:
        return False
    svc = self.services
    with svc.db.transaction() as session:
        pending = PendingPush().add_rows(
            notifications.notify_offer(session, mid, datetime.now(UTC)))
    push_after_commit(svc, pending)
    return bool(pending.ids)


@shared_task(name="notifications.push_pending", bind=True, time_limit=60, soft_time_limit=50,
             ignore_result=True)
def push_pending(self: ServicesTask) -> int:
    """Beat sweep: push the notifications whose push was lost (rows locked while pushing, so
    two sweeps never push the same row at once). Returns how many were pushed."""
    svc = self.services
    now = datetime.now(UTC)
    with svc.db.transaction() as session:
        rows = notifications.unpushed(session, notifications.sweep_cutoff(now, PUSH_GRACE_S),
                                      PUSH_SWEEP_BATCH)
        if not rows:
            return 0
        pending = PendingPush().add_rows(rows)
        svc.pusher.push(pending.events)  # raises on Redis errors: nothing is marked
        notifications.mark_pushed(session, pending.ids, now)
    return len(pending.ids)
