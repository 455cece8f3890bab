"""The Socket.IO notifier on a real Redis: what a batch publishes (one pipeline) is exactly
what one emit at a time would have, in order."""

from __future__ import annotations

import uuid

import redis

from core.notifier import SocketIONotifier
from tests.conftest import TEST_REDIS_URL
from tests.tasks.test_events import _messages


def test_a_batch_publishes_what_single_emits_would_in_order(
        redis_client: redis.Redis) -> None:
    channel = f"test-notifier-{uuid.uuid4()}"
    notifier = SocketIONotifier(TEST_REDIS_URL, channel=channel)
    pubsub = redis_client.pubsub()
    pubsub.subscribe(channel)
    messages = [("order:created", {"n": i}, f"user:{i}", f"{i}-0" if i % 2 else None)
                for i in range(5)]

    for event, data, room, offset in messages:
        notifier.emit(event, data, room=room, offset=offset)
    one_by_one = _messages(pubsub, 5)
    notifier.emit_many(messages)
    batched = _messages(pubsub, 5)

    assert len(one_by_one) == 5
    assert batched == one_by_one
    assert [m["room"] for m in batched] == [f"user:{i}" for i in range(5)]
    assert batched[1]["data"] == [{"n": 1}, "1-0"] and batched[0]["data"] == [{"n": 0}]
    # After a batch, a single emit publishes at once again.
    notifier.emit("order:created", {"n": 9}, room="user:9")
    assert [m["data"] for m in _messages(pubsub, 1)] == [[{"n": 9}]]
    pubsub.close()

