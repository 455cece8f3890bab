"""The outbox relay: publish committed events and enqueue their follow-up work.

Kicked right after every commit that wrote outbox rows, and swept by beat every few seconds, so
a crash between commit and publish delays an event but never loses it. Rows are claimed with
``FOR UPDATE SKIP LOCKED`` so several workers can drain in parallel without double-publishing
(PostgreSQL; SQLite serialises writers anyway).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from celery import Celery, Task, shared_task
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services import services
from db.lifecycle_models import OutboxMessage

log = logging.getLogger(__name__)
EVENTS_CHANNEL = "taplive:events"
DRAIN_TASK = "events.drain_outbox"
BATCH = 500

# topic -> tasks to enqueue with the aggregate id. Consumers are idempotent (at-least-once).
FOLLOW_UPS: dict[str, tuple[str, ...]] = {
    # Matching chain (docs/matching.md, "In the workers"): a new order is matched, the invited
    # providers are notified; an auto-dispatch offer starts its countdown and its notification.
    "order:created": ("matching.match_order",),
    "order:matched": ("notifications.notify_invited",),
    "dispatch:offered": ("matching.expire_offer", "notifications.notify_offer"),
    # Money follows the order (tasks/payments.py); each is a no-op when already done.
    "order:accepted": ("payments.authorize_hold",),
    "order:completed": ("payments.capture",),
    "order:cancelled": ("payments.release",),
    "order:resolved": ("payments.apply_resolution",),
}


@shared_task(name=DRAIN_TASK, bind=True, time_limit=60, soft_time_limit=50,
             ignore_result=True)
def drain_outbox(self: Task) -> int:
    """Publish every unpublished outbox row, oldest first. Returns how many were published."""
    svc = services()
    published = 0
    while True:
        with svc.db.transaction() as session:
            rows = list(session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.published_at.is_(None))
                .order_by(OutboxMessage.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            ))
            if not rows:
                return published
            pipe = svc.redis.pipeline(transaction=False)
            for row in rows:
                pipe.publish(EVENTS_CHANNEL, json.dumps({
                    "id": row.id, "topic": row.topic, "aggregateId": row.aggregate_id,
                    "payload": row.payload, "requestId": row.request_id,
                    "createdAt": row.created_at.isoformat(),
                }))
            pipe.execute()
            for row in rows:
                for task_name in FOLLOW_UPS.get(row.topic, ()):
                    self.app.send_task(task_name, args=[row.aggregate_id],
                                       headers={"taplive_request_id": row.request_id})
                row.published_at = datetime.now(UTC)
                row.attempts += 1
            published += len(rows)
        if len(rows) < BATCH:
            return published


def kick_after_commit(celery: Celery, session: Session) -> None:
    """Database.on_commit hook: a commit that wrote outbox rows asks a worker to drain now.

    Sent through the app's own Celery instance (not the process-global default), with
    retry=False: a dead broker must not stall the request; the beat sweep catches up."""
    if session.info.pop("outbox_pending", False):
        celery.send_task(DRAIN_TASK, ignore_result=True, retry=False)
