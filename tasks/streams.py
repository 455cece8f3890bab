"""Stream tasks (queue ``default``): finishing streams whose publisher did not come back, and
sampling nginx-rtmp's ingest statistics while streams are live (docs/streaming.md). Beat
sweeps; each run is idempotent (a session is locked, re-checked, and changed once)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from celery import shared_task

from core import rtmp_stat
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


@shared_task(name="streams.sample_stats", bind=True, time_limit=30, soft_time_limit=25,
             ignore_result=True)
def sample_stats(self: ServicesTask) -> dict[str, int]:
    """Beat, every 5 s: while sessions are live, read nginx-rtmp's /stat once and record each
    live session's bytes in, bitrate and resolution; a session whose publisher is gone from it
    (nginx restarted or killed sends no on_publish_done) is closed as that callback would.
    Returns how many sessions were sampled / closed."""
    svc = self.services
    outcomes = {"sampled": 0, "closed": 0, "skipped": 0}
    with svc.db.transaction() as session:
        live = streams.live_sessions(session)
    if not live:
        return outcomes
    read_at = datetime.now(UTC)
    try:
        publishing = rtmp_stat.publishing(rtmp_stat.fetch(svc.settings.stream_stat_endpoint))
    except rtmp_stat.StatUnavailable as exc:
        # Unreachable is not "gone": a network blip must not end anybody's stream. A restarted
        # nginx answers again, without the vanished publishers, and those are closed then.
        log.warning("rtmp /stat unavailable", extra={"error": str(exc)})
        return outcomes
    for session_id in live:  # one transaction each, as finish_idle
        with svc.db.transaction() as session:
            outcome = streams.sample_ingest(session, session_id, publishing, read_at,
                                            svc.settings.secret_key)
        outcomes[outcome] += 1
        if outcome == "closed":
            log.info("stream publisher gone from the ingest; segment closed",
                     extra={"stream_session": str(session_id)})
    return outcomes
