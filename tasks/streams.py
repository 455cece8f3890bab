"""Stream tasks (queue ``default``): finishing streams whose publisher did not come back
(docs/streaming.md). Beat sweeps; each run is idempotent (a session is locked, re-checked,
and finished once)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from celery import shared_task

from domain import streams
from domain.stream_sessions import StreamRules
from tasks.base import ServicesTask

log = logging.getLogger(__name__)


@shared_task(name="streams.finish_idle", bind=True, time_limit=60, soft_time_limit=50,
             ignore_result=True)
def finish_idle(self: ServicesTask) -> int:
    """Beat, every 10 s: sessions interrupted for longer than the grace end, and their orders
    complete by themselves (when the stream ran long enough). Returns how many completed."""
    svc = self.services
    rules = StreamRules.from_settings(svc.settings)
    now = datetime.now(UTC)
    with svc.db.transaction() as session:
        due = streams.idle_sessions(session, rules, now)
    completed = 0
    for session_id in due:  # one transaction each: one stuck order never holds up the rest
        with svc.db.transaction() as session:
            if streams.finish_idle(session, session_id, rules, now) is not None:
                completed += 1
                log.info("stream ended; order completed",
                         extra={"stream_session": str(session_id)})
    return completed
