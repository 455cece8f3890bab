"""``users.last_active_at`` without a database write per request.

An authenticated request does one ``HSET user_id -> now`` on a Redis hash (O(1), and a user
seen a thousand times between flushes is still one field), pipelined with the token's denylist
check; each process marks a user at most once per ``MARK_EVERY_S`` (``due``), so most requests
skip even that. The beat task
``maintenance.flush_last_active`` renames the hash away atomically and writes all of it in one
batched UPDATE. The value is therefore up to ``MARK_EVERY_S`` plus one flush interval late
(90 s with the defaults), which is what "last active" needs.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime

import redis
from cachetools import TTLCache
from redis.client import Pipeline

log = logging.getLogger(__name__)

PENDING_KEY = "taplive:activity:pending"
MARK_EVERY_S = 30
# The batch being written. It survives a failed flush and is retried by the next one.
FLUSHING_KEY = "taplive:activity:flushing"


# Users this process marked in the last MARK_EVERY_S (bounded: the oldest are dropped first).
_recently_marked: TTLCache[uuid.UUID, bool] = TTLCache(
    maxsize=100_000, ttl=MARK_EVERY_S, timer=lambda: time.monotonic())
_recently_marked_lock = threading.Lock()


def due(user_id: uuid.UUID) -> bool:
    """Whether this process should mark ``user_id`` now (and, if so, it counts as marked)."""
    with _recently_marked_lock:
        if user_id in _recently_marked:
            return False
        _recently_marked[user_id] = True
        return True


def mark(client: redis.Redis | Pipeline, user_id: uuid.UUID, at: datetime | None = None) -> None:
    """Note that the user was active now. On a pipeline it is only queued: the request path
    sends it with the denylist check, in the same round trip."""
    moment = at or datetime.now(UTC)
    client.hset(PENDING_KEY, str(user_id), f"{moment.timestamp():.3f}")


@contextmanager
def draining(client: redis.Redis) -> Iterator[dict[uuid.UUID, datetime]]:
    """Yield the pending marks; they are deleted only if the block exits without an error.

    RENAMENX moves the live hash aside atomically, so marks made during the flush go to a new
    hash; it does nothing while an earlier failed batch is still waiting, which is then retried
    first (writes only move times forward, so retrying is harmless).
    """
    with suppress(redis.ResponseError):  # "no such key": nothing marked since the last flush
        client.renamenx(PENDING_KEY, FLUSHING_KEY)
    raw: dict[str, str] = client.hgetall(FLUSHING_KEY)  # type: ignore[assignment]
    seen: dict[uuid.UUID, datetime] = {}
    for user_id, stamp in raw.items():
        try:
            seen[uuid.UUID(user_id)] = datetime.fromtimestamp(float(stamp), UTC)
        except ValueError:
            log.warning("ignoring a malformed activity mark %r", user_id)
    yield seen
    client.delete(FLUSHING_KEY)
