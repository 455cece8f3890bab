"""Pushing events to connected clients: the one interface every emitter uses.

API processes, Celery workers and the real-time server itself push through a ``Notifier``; only
``SocketIONotifier`` knows that the real-time server is python-socketio behind a Redis message
queue. Another real-time server (SSE, a hosted push service) would replace that class and
nothing else.

Rooms are named here so that emitters and the server agree on them:
``user:<id>`` holds every socket of one account; ``order:<id>`` the sockets of an order's
participants that joined it; ``order:<id>:invited`` the invited providers that joined it (they
see only invitation-related events).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: The Socket.IO message-queue channel shared by the server and every write-only emitter.
SOCKETIO_CHANNEL = "taplive:socketio"


def user_room(user_id: object) -> str:
    return f"user:{user_id}"


def order_room(order_id: object) -> str:
    return f"order:{order_id}"


def invited_room(order_id: object) -> str:
    return f"order:{order_id}:invited"


class Notifier(Protocol):
    def emit(self, event: str, data: Mapping[str, Any], *, room: str,
             offset: str | None = None) -> None:
        """Push ``event`` to every socket in ``room``. ``offset`` (a recipient's stream
        position) rides as the last argument so a client can resume after it."""

    def emit_many(self, messages: Sequence[tuple[str, Mapping[str, Any], str, str | None]]
                  ) -> None:
        """Several ``(event, data, room, offset)`` pushes."""

    def close_room(self, room: str) -> None:
        """Take every socket out of ``room`` (on every server process)."""


class SocketIONotifier:
    """Emits through python-socketio's write-only ``RedisManager``: a PUBLISH on the shared
    channel that every real-time server process relays to its own sockets (~0.7 ms).
    ``emit_many`` sends its messages in one Redis pipeline (one round trip for a whole
    matching pass's invitations, issue 16); the messages are the library's own."""

    def __init__(self, redis_url: str, channel: str = SOCKETIO_CHANNEL) -> None:
        self._manager = _batching_manager(redis_url, channel)

    def emit(self, event: str, data: Mapping[str, Any], *, room: str,
             offset: str | None = None) -> None:
        args = (dict(data), offset) if offset is not None else dict(data)
        self._manager.emit(event, args, room=room, namespace="/")

    def emit_many(self, messages: Sequence[tuple[str, Mapping[str, Any], str, str | None]]
                  ) -> None:
        if not messages:
            return
        self._manager.publish_all([
            self._manager.encode(event, [dict(data), offset] if offset is not None
                                 else [dict(data)], room)
            for event, data, room, offset in messages])

    def close_room(self, room: str) -> None:
        self._manager.close_room(room, namespace="/")


def _batching_manager(redis_url: str, channel: str) -> Any:
    """A write-only ``socketio.RedisManager`` that can publish many messages in one pipeline.
    Imported here: a process that never emits never loads socketio."""
    import orjson
    import socketio

    class BatchingRedisManager(socketio.RedisManager):
        def __init__(self) -> None:
            super().__init__(redis_url, channel=channel, write_only=True)

        def encode(self, event: str, data: list[Any], room: str) -> bytes:
            """The message ``emit(event, data, room=room)`` publishes (``PubSubManager.emit``
            without a callback), encoded by orjson. The library's own path walks every
            payload looking for binary parts and encodes with the standard library: most of
            a large batch's time. JSON payloads only (orjson refuses bytes); the format is
            the library's, checked against it by ``tests/core/test_notifier.py``."""
            return orjson.dumps({
                "method": "emit", "event": event, "data": data, "binary": False,
                "namespace": "/", "room": room, "skip_sid": None, "callback": None,
                "host_id": self.host_id})

        def publish_all(self, messages: list[bytes]) -> None:
            """One pipeline of PUBLISHes; like the library's ``_publish``: reconnect and try
            once more, then log and give up (the replay log still holds each event)."""
            for retries_left in (1, 0):
                try:
                    if not getattr(self, "connected", False):
                        self._redis_connect()
                    with self.redis.pipeline(transaction=False) as pipe:
                        for message in messages:
                            pipe.publish(self.channel, message)
                        pipe.execute()
                    return
                except Exception:
                    if retries_left:
                        self.connected = False
                        continue
                    log.error("could not publish %d socket messages", len(messages),
                              exc_info=True)

    return BatchingRedisManager()
