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
    channel that every real-time server process relays to its own sockets (~0.7 ms)."""

    def __init__(self, redis_url: str, channel: str = SOCKETIO_CHANNEL) -> None:
        import socketio  # imported here: a process that never emits never loads it

        self._manager = socketio.RedisManager(redis_url, channel=channel, write_only=True)

    def emit(self, event: str, data: Mapping[str, Any], *, room: str,
             offset: str | None = None) -> None:
        args = (dict(data), offset) if offset is not None else dict(data)
        self._manager.emit(event, args, room=room, namespace="/")

    def emit_many(self, messages: Sequence[tuple[str, Mapping[str, Any], str, str | None]]
                  ) -> None:
        for event, data, room, offset in messages:
            self.emit(event, data, room=room, offset=offset)

    def close_room(self, room: str) -> None:
        self._manager.close_room(room, namespace="/")
