"""After a commit: push the notification rows it wrote (docs/realtime.md).

``notify`` runs inside the transaction that handles committed outbox rows and writes their
notification rows; ``push_after_commit`` runs after that transaction commits. A push that
fails (Redis down, the process killed) leaves ``pushed_at`` NULL and the sweep
(``notifications.push_pending``) pushes it later: delivery is at least once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy.orm import Session

from db.models import Notification, OutboxMessage
from domain import notifications
from domain.events import current_payload
from domain.realtime import OutboxEvent, route
from services import Services

log = logging.getLogger(__name__)


@dataclass
class PendingPush:
    """What one transaction wrote for pushing: rows to push, live emits, rows to mark."""

    events: list[tuple[uuid.UUID, dict[str, Any]]] = field(default_factory=list)
    live: list[tuple[str, dict[str, Any], str, str | None]] = field(default_factory=list)
    ids: list[uuid.UUID] = field(default_factory=list)
    closed_rooms: list[str] = field(default_factory=list)

    def add_rows(self, rows: Iterable[Notification | notifications.Written]) -> PendingPush:
        for row in rows:
            self.events.append((row.recipient_id, notifications.wire(row)))
            self.ids.append(row.id)
        return self


def notify(session: Session, rows: Sequence[OutboxMessage]) -> PendingPush:
    """Route each committed outbox row and store its notifications (in the caller's
    transaction)."""
    pending = PendingPush()
    deliveries = []
    now = datetime.now(UTC)
    for row in rows:
        routes = route(session, OutboxEvent(row.id, row.topic, row.aggregate_id,
                                            current_payload(row.payload), row.created_at))
        deliveries.extend(routes.deliveries)
        pending.live.extend((event, data, room, None) for event, data, room in routes.live)
        pending.closed_rooms.extend(routes.closed_rooms)
    return pending.add_rows(notifications.record(session, deliveries, now))


def push_after_commit(svc: Services, pending: PendingPush) -> None:
    """Push what a committed transaction wrote, then mark it pushed. Never raises for Redis
    or the database: what is not marked is pushed again by the sweep."""
    if not pending.events and not pending.live and not pending.closed_rooms:
        return
    try:
        svc.pusher.push(pending.events)
        if pending.live:
            svc.notifier.emit_many(pending.live)
        for room in dict.fromkeys(pending.closed_rooms):  # after the last emit to it
            svc.notifier.close_room(room)
    except redis.RedisError:
        log.warning("push failed; the sweep will retry", exc_info=True,
                    extra={"notifications": len(pending.ids)})
        return
    if pending.ids:
        try:
            with svc.db.transaction() as session:
                notifications.mark_pushed(session, pending.ids, datetime.now(UTC))
        except Exception:  # the sweep re-pushes; clients de-duplicate by id
            log.warning("could not mark notifications pushed", exc_info=True)
