"""Housekeeping tasks run by beat."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from celery import shared_task

from api.services import services

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
