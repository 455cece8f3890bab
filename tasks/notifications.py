"""Notification tasks (queue ``notifications``): many and small, never behind matching."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from celery import shared_task

from domain import notifications
from tasks.base import ServicesTask
from tasks.matching import RETRY, parse_id

log = logging.getLogger(__name__)


@shared_task(name="notifications.notify_invited", bind=True, time_limit=30, soft_time_limit=20,
             ignore_result=True, **RETRY)
def notify_invited(self: ServicesTask, order_id: str) -> int:
    """Follow-up of ``order:matched``: a notification record (and an ``order:created`` event)
    for each invited provider not notified yet. Returns how many were notified by this run."""
    oid = parse_id(order_id)
    if oid is None:
        return 0
    svc = self.services
    with svc.db.transaction() as session:
        notified = notifications.notify_invited(session, oid, datetime.now(UTC))
    return len(notified)


@shared_task(name="notifications.notify_offer", bind=True, time_limit=30, soft_time_limit=20,
             ignore_result=True, **RETRY)
def notify_offer(self: ServicesTask, match_id: str) -> bool:
    """Follow-up of ``dispatch:offered``: the offer's notification record, once."""
    mid = parse_id(match_id)
    if mid is None:
        return False
    svc = self.services
    with svc.db.transaction() as session:
        return notifications.notify_offer(session, mid, datetime.now(UTC))
