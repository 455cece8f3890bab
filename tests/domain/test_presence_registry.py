"""The Redis presence registry: availability, live positions, the change log and silence."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import redis

from domain.presence_store import PresenceRegistry, ProviderLocation

NOW = datetime.now(UTC)


def _loc(lat: float = 51.5, lon: float = -0.12) -> ProviderLocation:
    return ProviderLocation(lat, lon, 5.0, NOW)


def test_positions_are_published_only_while_online(redis_client: redis.Redis) -> None:
    registry, pid = PresenceRegistry(redis_client), uuid.uuid4()
    assert registry.locate(pid, _loc(), NOW.timestamp()) == 0
    assert registry.snapshot().records == {}
    assert registry.go_online(pid, {"maxTravelM": 2000, "verified": True}, None,
                              NOW.timestamp()) == 0  # online, but no position yet
    assert registry.locate(pid, _loc(51.50741234, -0.1278), NOW.timestamp()) == 1
    record = registry.snapshot().records[str(pid)]
    assert record["lat"] == 51.50741234 and record["maxTravelM"] == 2000
    registry.go_offline(pid)
    assert registry.snapshot().records == {} and registry.profile(pid) is None
    assert registry.locate(pid, _loc(), NOW.timestamp()) == 0


def test_change_log_replays_every_change_in_order(redis_client: redis.Redis) -> None:
    registry, a, b = PresenceRegistry(redis_client), uuid.uuid4(), uuid.uuid4()
    registry.go_online(a, {}, _loc(), NOW.timestamp())
    snapshot = registry.snapshot()
    registry.go_online(b, {}, _loc(1, 1), NOW.timestamp())
    registry.locate(a, _loc(2, 2), NOW.timestamp())
    registry.go_offline(b)
    changes = registry.changes_after(snapshot.stream_id, 100)
    assert [(c.seq, c.op, c.provider_id) for c in changes] == [
        (2, "upsert", str(b)), (3, "upsert", str(a)), (4, "remove", str(b))]
    assert changes[1].record is not None and changes[1].record["lat"] == 2
    assert registry.changes_after(changes[-1].stream_id, 100) == []
    assert registry.version() == 4


def test_silent_providers_leave_matching_but_stay_online(redis_client: redis.Redis) -> None:
    registry, quiet, chatty = PresenceRegistry(redis_client), uuid.uuid4(), uuid.uuid4()
    registry.go_online(quiet, {}, _loc(), 1000.0)
    registry.go_online(chatty, {}, _loc(), 2000.0)
    assert registry.drop_silent(1500.0) == [str(quiet)]
    assert set(registry.snapshot().records) == {str(chatty)}
    assert registry.drop_silent(1500.0) == []  # a second sweep changes nothing
    assert registry.profile(quiet) is not None  # still online: back with the next update
    registry.locate(quiet, _loc(), 3000.0)
    assert str(quiet) in registry.snapshot().records


def test_history_sampling_gate(redis_client: redis.Redis) -> None:
    registry, pid = PresenceRegistry(redis_client), uuid.uuid4()
    assert registry.claim_sample(pid, 60)
    assert not registry.claim_sample(pid, 60)
    assert registry.claim_sample(uuid.uuid4(), 60)
