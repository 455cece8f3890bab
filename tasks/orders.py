"""Order housekeeping tasks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import shared_task
from sqlalchemy.orm import Session

from db.queries import orders as order_queries
from db.queries import overdue as overdue_queries
from domain import order_actions, overdue
from domain.stream_sessions import StreamRules
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


# ------------------------------------------------------------ orders that hang (issue 17)
# Each order is its own transaction, locked and re-checked by the domain command, so a tick
# that runs twice, overlaps another or dies at any line does each step once.
@shared_task(name="maintenance.cancel_no_shows", bind=True, time_limit=120, soft_time_limit=100,
             ignore_result=True)
def cancel_no_shows(self: ServicesTask) -> int:
    """Cancel accepted orders whose provider never started (reason ``no_show``)."""
    svc = self.services
    rules = overdue.OverdueRules.from_settings(svc.settings)
    now = datetime.now(UTC)
    with svc.db.transaction() as session:
        ids = overdue_queries.find_no_show_candidates(session, now, rules.no_show_window,
                                                      rules.no_show_grace, BATCH)
    cancelled = 0
    for order_id in ids:
        with svc.db.transaction() as session:
            if overdue.cancel_no_show(session, order_id, rules, now) is not None:
                cancelled += 1
    if cancelled:
        log.info("cancelled %d orders as provider no-shows", cancelled)
    return cancelled


@shared_task(name="maintenance.settle_overdue_active", bind=True, time_limit=120,
             soft_time_limit=100, ignore_result=True)
def settle_overdue_active(self: ServicesTask) -> dict[str, int]:
    """Complete (stream ran) or escalate active orders past ORDER_ACTIVE_MAX_HOURS."""
    svc = self.services
    rules = overdue.OverdueRules.from_settings(svc.settings)
    streams = StreamRules.from_settings(svc.settings)
    now = datetime.now(UTC)
    with svc.db.transaction() as session:
        ids = overdue_queries.find_overdue_active(session, now, rules.active_max, BATCH)
    return _tally(svc, ids, lambda s, i: overdue.settle_overdue_active(s, i, rules, streams,
                                                                       now))


@shared_task(name="maintenance.settle_overdue_disputes", bind=True, time_limit=120,
             soft_time_limit=100, ignore_result=True)
def settle_overdue_disputes(self: ServicesTask) -> dict[str, int]:
    """Escalate old disputes to admins; resolve older ones by the default rule."""
    svc = self.services
    rules = overdue.OverdueRules.from_settings(svc.settings)
    streams = StreamRules.from_settings(svc.settings)
    now = datetime.now(UTC)
    with svc.db.transaction() as session:
        ids = overdue_queries.find_overdue_disputes(session, now, rules.dispute_escalate,
                                                    rules.dispute_resolve, BATCH)
    return _tally(svc, ids, lambda s, i: overdue.settle_overdue_dispute(s, i, rules, streams,
                                                                        now))


def _tally(svc: Any, ids: list[Any], step: Callable[[Session, Any], str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for order_id in ids:
        with svc.db.transaction() as session:
            outcome = step(session, order_id)
        if outcome != "nothing":
            counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        log.info("overdue orders handled", extra={"outcomes": counts})
    return counts


# ---------------------------------------------------------------------------------- retention
@shared_task(name="maintenance.purge_outbox", bind=True, time_limit=300, soft_time_limit=280,
             ignore_result=True)
def purge_outbox(self: ServicesTask) -> int:
    """Delete outbox rows published over OUTBOX_RETENTION_DAYS ago (never unpublished ones)."""
    svc = self.services
    before = datetime.now(UTC) - timedelta(days=svc.settings.outbox_retention_days)
    with svc.db.transaction() as session:
        purged = overdue_queries.purge_published_outbox(session, before)
    if purged:
        log.info("purged %d published outbox rows", purged)
    return purged


@shared_task(name="maintenance.purge_notifications", bind=True, time_limit=300,
             soft_time_limit=280, ignore_result=True)
def purge_notifications(self: ServicesTask) -> int:
    """Delete read notifications past NOTIFICATION_READ_RETENTION_DAYS and any past
    NOTIFICATION_RETENTION_DAYS."""
    svc = self.services
    now = datetime.now(UTC)
    with svc.db.transaction() as session:
        purged = overdue_queries.purge_notifications(
            session, now - timedelta(days=svc.settings.notification_read_retention_days),
            now - timedelta(days=svc.settings.notification_retention_days))
    if purged:
        log.info("purged %d old notifications", purged)
    return purged
