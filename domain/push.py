"""Pushing stored notifications to their recipients' sockets, with a replay log for clients
that reconnect (docs/realtime.md, "Recovery on reconnect").

Each push appends the event to its recipient's Redis stream ``taplive:rt:user:<id>`` (trimmed
to the retention window) and emits it to the room ``user:<id>`` with the stream entry's id as
the last argument: the *offset* a reconnecting client hands back. Stream ids are assigned by
Redis in append order, so "everything after my offset" is exactly what a client missed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import redis

from core.notifier import Notifier, user_room

log = logging.getLogger(__name__)

STREAM_PREFIX = "taplive:rt:user:"


def stream_key(user_id: object) -> str:
    return f"{STREAM_PREFIX}{user_id}"


def _offset_ms(offset: str) -> int | None:
    """The time part of a stream id, or None if ``offset`` is not one."""
    head, _, tail = offset.partition("-")
    if not (head.isdigit() and (tail == "" or tail.isdigit())) or len(head) > 15:
        return None
    return int(head)


class NotificationPusher:
    """Appends to the replay log and emits, one Redis pipeline per batch."""

    def __init__(self, client: redis.Redis, notifier: Notifier, retention_s: int) -> None:
        self._redis = client
        self._notifier = notifier
        self.retention_ms = retention_s * 1000

    def push(self, events: Sequence[tuple[object, Mapping[str, Any]]]) -> None:
        """Push ``(recipient id, wire event)`` pairs. Raises ``redis.RedisError`` when nothing
        could be pushed (the rows stay unpushed; the sweep tries again)."""
        if not events:
            return
        min_id = f"{int(time.time() * 1000) - self.retention_ms}-0"
        pipe = self._redis.pipeline(transaction=False)
        for recipient, event in events:
            key = stream_key(recipient)
            pipe.xadd(key, {"e": orjson.dumps(event)},
                      minid=min_id, approximate=True)
            # A user who is never online again: the log disappears with the window.
            pipe.pexpire(key, self.retention_ms)
        replies = pipe.execute()
        offsets = [_text(replies[i]) for i in range(0, len(replies), 2)]
        self._notifier.emit_many([
            (str(event["event"]), event, user_room(recipient), offset)
            for (recipient, event), offset in zip(events, offsets, strict=True)])

    def replay(self, user_id: object, offset: str, *, now_ms: int | None = None
               ) -> list[tuple[str, dict[str, Any]]] | None:
        """What the user was pushed after ``offset``, oldest first, as ``(offset, event)``;
        None when ``offset`` is not one of ours or older than the retention window (entries
        may be gone: the client must catch up over REST)."""
        at = _offset_ms(offset)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if at is None or at < now_ms - self.retention_ms or at > now_ms + 60_000:
            return None
        entries: list[Any] = self._redis.xrange(stream_key(user_id), min=f"({offset}",
                                                max="+") or []
        return [(_text(entry_id), json.loads(_text(fields.get(b"e") or fields.get("e"))))
                for entry_id, fields in entries]

def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
