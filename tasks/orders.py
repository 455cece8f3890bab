"""Order housekeeping tasks."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from celery import shared_task

from db.queries import orders as order_queries
from domain import order_actions
from tasks.base import ServicesTask

log = logging.getLogger(__name__)
BATCH = 200


@shared_task(name="maintenance.expire_orders", bind=True, time_limit=120, soft_time_limit=100,
             ignore_result=True)
def expire_orders(self: ServicesTask) -> int:
    """Cancel (reason ``expired``) pending orders past their time. Each order is its own
    transaction, re-checked under its row lock, so a tick that runs twice or overlaps another
    expires each order once."""
    svc = self.services
    settings = svc.settings
    now = datetime.now(UTC)
    with svc.db.transaction() as session:
        ids = order_queries.find_expired_pending_ids(
            session, now, timedelta(hours=settings.order_pending_ttl_hours),
            timedelta(minutes=settings.order_expiry_grace_minutes), BATCH)
    expired = 0
    for order_id in ids:
        with svc.db.transaction() as session:
            if order_actions.expire(session, order_id, now) is not None:
                expired += 1
    if expired:
        log.info("expired %d pending orders", expired)
    return expired
