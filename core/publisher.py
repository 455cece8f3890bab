"""Where committed events go once the outbox relay has read them.

The relay (``tasks.events.drain_outbox``) hands each batch to one ``EventPublisher``; today that
is a Redis channel (``taplive:events``). The real-time server and any other consumer subscribe
there, or replace this class without touching the relay or the commands that wrote the events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import redis

EVENTS_CHANNEL = "taplive:events"


class EventPublisher(Protocol):
    def publish_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Publish every event of one batch; raises when they could not be handed over (the
        relay then leaves the batch unpublished and the sweep tries again)."""


class RedisEventPublisher:
    """Publishes each event as one JSON message on a Redis pub/sub channel, the batch in one
    pipelined round trip."""

    def __init__(self, client: redis.Redis, channel: str = EVENTS_CHANNEL) -> None:
        self._client = client
        self.channel = channel

    def publish_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            pipe.publish(self.channel, json.dumps(event))
        pipe.execute()
