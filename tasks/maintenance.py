"""Housekeeping tasks run by beat."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from celery import shared_task

from api.services import services
from db.queries import users as user_queries
from domain.auth import activity

log = logging.getLogger(__name__)
HEARTBEAT_KEY = "taplive:heartbeat:last"


@shared_task(name="maintenance.heartbeat", time_limit=20, soft_time_limit=15, ignore_result=True)
def heartbeat() -> str:
    """Record that beat scheduled and a worker ran something: operators (and `make run`'s
    smoke check) can see the pipeline is alive. Overwrites one key, so repeats are harmless."""
    now = datetime.now(UTC).isoformat()
    services().redis.set(HEARTBEAT_KEY, now, ex=3600)
    log.info("heartbeat")
    return now


@shared_task(name="maintenance.flush_last_active", time_limit=60, soft_time_limit=50,
             ignore_result=True)
def flush_last_active() -> int:
    """Write the activity marked in Redis since the last run to ``users.last_active_at``, in
    one batched UPDATE (see ``api.auth.activity``). No retry policy: a failed batch stays in
    Redis and the next tick (a minute later) writes it; times only move forward, so a batch
    written twice is harmless. Returns the number of users updated."""
    svc = services()
    with activity.draining(svc.redis) as seen, svc.db.transaction() as session:
        updated = user_queries.bump_last_active(session, seen)
    log.info("flushed last activity", extra={"users": len(seen), "updated": updated})
    return updated


@shared_task(name="maintenance.purge_idempotency_keys", time_limit=120, soft_time_limit=100,
             ignore_result=True)
def purge_idempotency_keys() -> int:
    """Drop expired Idempotency-Key records (they live IDEMPOTENCY_TTL_HOURS, at least 24 h).
    A second run finds nothing left to delete."""
    from db.queries.housekeeping import purge_expired_idempotency_keys

    with services().db.transaction() as session:
        purged = purge_expired_idempotency_keys(session, datetime.now(UTC))
    if purged:
        log.info("purged %d expired idempotency keys", purged)
    return purged
