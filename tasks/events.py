"""The outbox relay: publish committed events and enqueue their follow-up work.

Kicked right after every commit that wrote outbox rows, and swept by beat every few seconds, so
a crash between commit and publish delays an event but never loses it. Kicks are coalesced: a
commit sends one only if no drain is already due (see ``kick_after_commit``), so a burst of
writes costs one Celery message instead of one each. Rows are claimed with
``FOR UPDATE SKIP LOCKED`` so several workers can drain in parallel without double-publishing
(PostgreSQL; SQLite serialises writers anyway).

The fast path (docs/realtime.md, "Latency fast path"): the same commit hook also sends the
committed rows' follow-up tasks itself and marks those rows in Redis, so the next step of a
chain starts one drain earlier and the drain publishes such rows without sending their
follow-ups again. Marking is best effort; the cost of a miss is a duplicate follow-up, which
every one of them absorbs (``FOLLOW_UPS``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Celery, shared_task
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import OutboxMessage
from db.session import committed_notes
from domain.events import FOLLOW_UPS_DONE, OUTBOX_WRITTEN, WrittenOutbox, current_payload
from tasks.base import ServicesTask
from tasks.matching import MATCH_TASK, pass_needed, pass_not_sent
from tasks.push import notify, push_after_commit

log = logging.getLogger(__name__)
DRAIN_TASK = "events.drain_outbox"
ORDER_CREATED = "order:created"
BATCH = 500
#: Set (NX) by the commit that sends a kick, deleted by the drain when it starts: while it
#: exists a drain is due that will read every row committed so far, so no kick is needed. The
#: TTL only bounds the damage of a kick that was lost (the sweep still finds its rows).
KICK_KEY = "taplive:outbox:drain-due"
KICK_TTL_MS = 2_000
#: Set by the commit hook for each outbox row whose follow-ups it sent itself (the fast path):
#: the drain publishes such a row but does not send its follow-ups again. The TTL only has to
#: outlive the row's wait for a drain; after it, a late drain merely sends a duplicate.
FOLLOWED_KEY = "taplive:outbox:followed:{}"
FOLLOWED_TTL_S = 600

# topic -> tasks to enqueue with the aggregate id. Consumers are idempotent (at-least-once).
FOLLOW_UPS: dict[str, tuple[str, ...]] = {
    # Matching chain (docs/matching.md, "In the workers"): a new order is matched, the invited
    # providers are notified; an auto-dispatch offer starts its countdown and its notification.
    # New orders are matched in batched passes (issue 16): see ``send_follow_up``.
    ORDER_CREATED: (MATCH_TASK,),
    "order:matched": ("notifications.notify_invited",),
    "dispatch:offered": ("matching.expire_offer", "notifications.notify_offer"),
    # Money follows the order (tasks/payments.py); each is a no-op when already done.
    "order:accepted": ("payments.authorize_hold",),
    "order:completed": ("payments.capture",),
    "order:cancelled": ("payments.release",),
    "order:resolved": ("payments.apply_resolution",),
    # A creator re-opened an order after a no-show: matched afresh (issue 17).
    "order:reopened": ("matching.match_order",),
}


@shared_task(name=DRAIN_TASK, bind=True, time_limit=60, soft_time_limit=50,
             ignore_result=True)
def drain_outbox(self: ServicesTask) -> int:
    """Publish every unpublished outbox row, oldest first. Returns how many were published."""
    svc = self.services
    try:
        # Before reading: a commit after this point sends a kick of its own.
        svc.redis.delete(KICK_KEY)
    except redis.RedisError:
        log.warning("could not clear the drain-due flag", exc_info=True)
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
            svc.events.publish_many({
                "id": row.id, "topic": row.topic, "aggregateId": row.aggregate_id,
                # Rows stored before today's payload shape are published in it.
                "payload": current_payload(row.payload), "requestId": row.request_id,
                "createdAt": row.created_at.isoformat(),
            } for row in rows)
            # Who learns of what (domain/realtime.py): their notification rows are written in
            # this transaction, so a drain that dies before commit writes none of them.
            pushes = notify(session, rows)
            followed = followed_directly(svc.redis, rows)
            for row in rows:
                # A row whose commit sent its follow-ups (the fast path) needs no second send.
                follow_ups = () if row.id in followed else FOLLOW_UPS.get(row.topic, ())
                for task_name in follow_ups:
                    send_follow_up(self.app, svc.redis, row.topic, task_name,
                                   row.aggregate_id, row.request_id)
                row.published_at = datetime.now(UTC)
                row.attempts += 1
            published += len(rows)
        push_after_commit(svc, pushes)
        if len(rows) < BATCH:
            return published


def send_follow_up(celery: Celery, client: redis.Redis, topic: str, task_name: str,
                   aggregate_id: str, request_id: str | None, **options: Any) -> None:
    """Send one follow-up task of a committed row. A new order's match task goes through the
    dispatch window (``tasks.matching.PASS_DUE_KEY``): when a pass is already due, that pass
    takes the order and nothing is sent (issue 16)."""
    windowed = topic == ORDER_CREATED and task_name == MATCH_TASK
    if windowed and not pass_needed(client, aggregate_id):
        return
    try:
        celery.send_task(task_name, args=[aggregate_id], ignore_result=True,
                         headers={"taplive_request_id": request_id}, **options)
    except Exception:
        if windowed:
            pass_not_sent(client)
        raise


def followed_directly(client: redis.Redis, rows: Sequence[OutboxMessage]) -> set[int]:
    """The ids among ``rows`` whose follow-ups their commit already sent (``FOLLOWED_KEY``).
    Without Redis: none (the drain sends them again, a duplicate every follow-up absorbs)."""
    ids = [row.id for row in rows if row.topic in FOLLOW_UPS]
    if not ids:
        return set()
    try:
        marks = client.mget([FOLLOWED_KEY.format(row_id) for row_id in ids])
    except redis.RedisError:
        log.warning("could not read which follow-ups were sent directly", exc_info=True)
        return set()
    return {row_id for row_id, mark in zip(ids, marks, strict=True) if mark}


def send_follow_ups(celery: Celery, client: redis.Redis, written: Iterable[WrittenOutbox],
                    done: frozenset[str] = frozenset()) -> list[int]:
    """The fast path: send the follow-up tasks of outbox rows just committed, now, rather than
    one drain later, then mark the rows so the drain does not send them again. Returns the ids
    marked.

    The outbox stays the guarantee. A send that fails (``retry=False``: a dead broker must not
    stall the request longer than its connection timeout) raises after marking the rows sent
    before it; the rest stay unmarked for the drain. A mark that is lost, or lands after a
    drain read its row, costs a duplicate, which every follow-up absorbs (docs/matching.md,
    "Tasks"). Marks are written only after the sends: a marked row's follow-ups are on the
    broker. Rows of a topic in ``done`` (``domain.events.follow_ups_done_here``) are marked
    without sending: their transaction did the work."""
    sent: list[int] = []
    try:
        for note in written:
            row_id, task_names = note.id, FOLLOW_UPS.get(note.topic, ())
            if row_id is None or not task_names:
                continue
            for task_name in task_names if note.topic not in done else ():
                send_follow_up(celery, client, note.topic, task_name, note.aggregate_id,
                               note.request_id, retry=False)
            sent.append(row_id)
    finally:
        marked = _mark_followed(client, sent)
    return marked


def _mark_followed(client: redis.Redis, ids: list[int]) -> list[int]:
    if not ids:
        return ids
    try:
        with client.pipeline(transaction=False) as pipe:
            for row_id in ids:
                pipe.set(FOLLOWED_KEY.format(row_id), "1", ex=FOLLOWED_TTL_S)
            pipe.execute()
    except redis.RedisError:
        log.warning("could not mark follow-ups as sent; the relay sends them again",
                    exc_info=True)
        return []
    return ids


def kick_after_commit(celery: Celery, client: redis.Redis, session: Session) -> None:
    """Database.on_commit hook: a commit that wrote outbox rows sends their follow-ups
    (``send_follow_ups``) and makes sure a drain is due.

    Coalesced through ``KICK_KEY``: ``SET NX`` (one Redis round trip) either finds a drain
    already due, which deletes the key before it reads and so will see this commit's rows, or
    wins, and sends the kick (a Celery message costs several times the round trip). Sent
    through the app's own Celery instance (not the process-global default), with retry=False:
    a dead broker must not stall the request; the beat sweep catches up."""
    if not session.info.pop("outbox_pending", False):
        return
    # Raises if the broker refused a follow-up: it would refuse the kick too, and each refusal
    # costs the request the broker's connection timeout. The beat sweep drains these rows.
    send_follow_ups(celery, client, committed_notes(session, OUTBOX_WRITTEN),
                    frozenset(committed_notes(session, FOLLOW_UPS_DONE)))
    try:
        if not client.set(KICK_KEY, "1", nx=True, px=KICK_TTL_MS):
            return
    except redis.RedisError:
        log.warning("could not coordinate the outbox kick; kicking anyway", exc_info=True)
    try:
        celery.send_task(DRAIN_TASK, ignore_result=True, retry=False)
    except Exception:
        # No drain is coming after all: let the next commit try again.
        with suppress(redis.RedisError):
            client.delete(KICK_KEY)
        raise
