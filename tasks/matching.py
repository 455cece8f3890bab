"""Matching tasks (queue ``matching``) and presence housekeeping (queue ``maintenance``).

Every task takes ids, re-loads and re-checks state in its own transaction (the domain commands
lock what they change), so a redelivery or a second run is harmless; a row that is gone is a
no-op. Transient failures (database or Redis unavailable, a lost optimistic-lock race) are
retried with exponential backoff and jitter.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from celery import shared_task
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from db.queries import matching as match_queries
from domain import dispatch, matching_service, notifications
from domain.events import follow_ups_done_here
from domain.matching_service import ORDER_MATCHED, MatchingRules
from tasks.base import ServicesTask
from tasks.push import PendingPush, push_after_commit

log = logging.getLogger(__name__)

RETRYABLE: tuple[type[BaseException], ...] = (
    OperationalError, StaleDataError, IntegrityError, RedisConnectionError, RedisTimeoutError)
# Exponential backoff (1, 2, 4, ... s, capped) with full jitter, so a burst of failures does
# not come back as a synchronised burst of retries.
RETRY: dict[str, Any] = {"autoretry_for": RETRYABLE, "retry_backoff": 1,
                         "retry_backoff_max": 60, "retry_jitter": True, "max_retries": 5}
REMATCH_LOCK = "taplive:matching:rematch:lock"
PURGE_BATCH = 5000
MATCH_TASK = "matching.match_order"
#: The dispatch window (issue 16). Set (NX) by the commit of a new order that sends a match
#: task, deleted by the task when its pass begins, before it claims anything: while the key
#: exists a pass is due that will sweep every order committed so far, so the commits of new
#: orders send nothing more. A burst then costs one Celery message per pass, not one per
#: order (each message costs the Redis transport ~3.5 ms of worker CPU, more than matching
#: the order). The TTL bounds the wait if the sender died between the SET and the send; its
#: outbox row, not marked followed, is then sent again by the drain.
PASS_DUE_KEY = "taplive:matching:pass-due"
PASS_DUE_TTL_MS = 2_000


def pass_needed(client: redis.Redis, order_id: str) -> bool:
    """For a new order's commit: True if it must send a match task (no pass is due), False
    if a pass is due that has not begun its sweep, which will take the order."""
    try:
        return bool(client.set(PASS_DUE_KEY, order_id, nx=True, px=PASS_DUE_TTL_MS))
    except RedisError:
        log.warning("could not coordinate matching passes; sending one", exc_info=True)
        return True


def pass_not_sent(client: redis.Redis) -> None:
    """The send that ``pass_needed`` asked for failed: let the next commit send one."""
    with suppress(RedisError):
        client.delete(PASS_DUE_KEY)


def parse_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        log.warning("ignoring a task for a malformed id")
        return None


def _now() -> datetime:
    return datetime.now(UTC)


@shared_task(name=MATCH_TASK, bind=True, time_limit=30, soft_time_limit=20,
             ignore_result=True, **RETRY)
def match_order(self: ServicesTask, order_id: str) -> int:
    """Invite the best live providers to a new order (follow-up of ``order:created``, sent
    only when no pass is due: ``PASS_DUE_KEY``) in a batched pass with every other order due
    (``matching_service.match_due``): under load one task matches everything that arrived
    since the previous pass began. Returns how many invitations this run wrote, for all the
    orders of its pass."""
    oid = parse_id(order_id)
    if oid is None:
        return 0
    done = _pass(self.services, oid, wait=False)
    if not done.own_claimed:
        # Another pass holds the order. Wait for it: it commits (the order is matched, this
        # is a no-op) or dies (its lock is gone and this pass matches the order).
        done = _pass(self.services, oid, wait=True)
    if done.full and done.invited:
        # More may be due than one pass takes, and no commit will ask for them: another.
        self.app.send_task(MATCH_TASK, args=[order_id], ignore_result=True)
    return done.invited


def _pass(svc: Any, oid: uuid.UUID, *, wait: bool) -> matching_service.PassResult:
    """One matching pass in one transaction, its invitations' notifications in the same
    commit and pushed right after it."""
    started = time.perf_counter()
    # Before the sweep's snapshot: a commit after this point asks for a pass of its own.
    with suppress(RedisError):
        svc.redis.delete(PASS_DUE_KEY)
    index = svc.provider_index.get()
    pending = PendingPush()
    with svc.db.transaction() as session:
        now = _now()
        done = matching_service.match_due(session, oid, index, svc.presence, now,
                                          MatchingRules.from_settings(svc.settings), wait=wait)
        matched = [done.orders[r.order_id] for r in done.results if r.invited]
        if matched:
            # The ``order:matched`` follow-up (``notify_invited``) has nothing left to do: it
            # is not sent (issue 12). A push lost to a crash is the push sweep's.
            pending.add_rows(notifications.notify_invited_many(session, matched, now))
            follow_ups_done_here(session, ORDER_MATCHED)
    push_after_commit(svc, pending)
    log.info("order matched", extra={
        "order_id": str(oid), "orders": len(done.results), "invited": done.invited,
        "index_version": index.version,
        "pass_ms": round((time.perf_counter() - started) * 1000, 1)})
    return done


@shared_task(name="matching.rematch_all", bind=True, time_limit=55, soft_time_limit=50,
             ignore_result=True, **RETRY)
def rematch_all(self: ServicesTask) -> dict[str, Any] | None:
    """Beat, every minute: drop silent providers, then re-match every pending order against
    current positions in one batch. A Redis lock keeps overlapping ticks from doing the same
    work twice (the result would be the same anyway: the re-match is idempotent)."""
    svc = self.services
    if not svc.redis.set(REMATCH_LOCK, "1", nx=True, ex=55):
        log.info("re-match skipped: another run holds the lock")
        return None
    try:
        registry = svc.presence
        rules = MatchingRules.from_settings(svc.settings)
        registry.drop_silent(_now().timestamp() - rules.offline_after_s)
        index = svc.provider_index.get(force=True)
        with svc.db.transaction() as session:
            report = matching_service.rematch(session, index, registry, _now(), rules)
    finally:
        svc.redis.delete(REMATCH_LOCK)
    log.info("re-match done", extra={"report": report.as_dict()})
    return report.as_dict()


@shared_task(name="matching.expire_offer", bind=True, time_limit=20, soft_time_limit=15,
             ignore_result=True, **RETRY)
def expire_offer(self: ServicesTask, match_id: str) -> str:
    """The auto-dispatch countdown (follow-up of ``dispatch:offered``): while the offer is open
    it re-schedules itself for the moment it expires; then the offer lapses and the next
    candidate gets one (whose own ``dispatch:offered`` starts the next countdown)."""
    mid = parse_id(match_id)
    if mid is None:
        return "gone"
    svc = self.services
    ttl = timedelta(seconds=svc.settings.matching_offer_ttl_s)
    with svc.db.transaction() as session:
        outcome = dispatch.expire_offer(session, mid, _now(), ttl)
    if outcome.state == "not_due":
        # After the commit above; a crash before this line redelivers the task (acks_late).
        self.apply_async(args=[match_id], countdown=outcome.remaining_s + 0.05)
    return outcome.state


@shared_task(name="maintenance.sweep_presence", bind=True, time_limit=30, soft_time_limit=25,
             ignore_result=True, **RETRY)
def sweep_presence(self: ServicesTask) -> int:
    """Beat: providers silent for longer than PRESENCE_OFFLINE_AFTER_S leave the matching
    index (they stay online and return with their next location update)."""
    svc = self.services
    cutoff = _now().timestamp() - svc.settings.presence_offline_after_s
    dropped = svc.presence.drop_silent(cutoff)
    if dropped:
        log.info("silent providers went offline", extra={"count": len(dropped)})
    return len(dropped)


@shared_task(name="maintenance.purge_location_history", bind=True, time_limit=300,
             soft_time_limit=280,
             ignore_result=True, **RETRY)
def purge_location_history(self: ServicesTask) -> int:
    """Beat: delete location samples older than the retention period, in short batches."""
    svc = self.services
    before = _now() - timedelta(days=svc.settings.location_history_retention_days)
    purged = 0
    while True:
        with svc.db.transaction() as session:
            n = match_queries.purge_location_history(session, before, PURGE_BATCH)
        purged += n
        if n < PURGE_BATCH:
            break
    if purged:
        log.info("location history purged", extra={"rows": purged})
    return purged
