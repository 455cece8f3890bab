"""The worker's in-memory matching index: built once, then kept current from the change log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import redis

from domain.presence_store import CHANGES, PresenceRegistry, ProviderLocation
from domain.provider_index import ProviderIndexHolder


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _online(registry: PresenceRegistry, lat: float, lon: float, seen: float | None = None,
            pid: uuid.UUID | None = None) -> str:
    pid = pid or uuid.uuid4()
    now = datetime.now(UTC)
    registry.go_online(pid, {"verified": True}, ProviderLocation(lat, lon, None, now),
                       seen if seen is not None else now.timestamp())
    return str(pid)


def _holder(registry: PresenceRegistry, clock: Clock, **kw: float) -> ProviderIndexHolder:
    options = {"max_staleness_s": 1.0, "max_changes": 100, "offline_after_s": 120.0} | kw
    return ProviderIndexHolder(registry, clock=clock, **options)  # type: ignore[arg-type]


def test_built_once_then_refreshed_incrementally(redis_client: redis.Redis) -> None:
    registry, clock = PresenceRegistry(redis_client), Clock()
    a = _online(registry, 51.5, -0.12)
    holder = _holder(registry, clock)
    first = holder.get()
    assert list(first.ids) == [a] and holder.full_builds == 1
    b = _online(registry, 51.501, -0.121)
    assert holder.get() is first  # within the staleness window: no Redis round trip at all
    clock.t = 1.5
    second = holder.get()
    assert set(second.ids.tolist()) == {a, b} and holder.full_builds == 1
    assert holder.incremental_updates == 1 and second.version == registry.version()
    clock.t = 3.0
    assert holder.get() is second  # nothing changed: the same index object
    registry.go_offline(uuid.UUID(a))
    registry.locate(uuid.UUID(b), ProviderLocation(48.85, 2.35, None, datetime.now(UTC)),
                    datetime.now(UTC).timestamp())
    clock.t = 4.5
    third = holder.get()
    assert third.ids.tolist() == [b] and float(third.lat[0]) == 48.85
    assert len(third.within(48.85, 2.35, 100)) == 1 and holder.full_builds == 1


def test_gap_in_the_change_log_means_a_full_rebuild(redis_client: redis.Redis) -> None:
    registry, clock = PresenceRegistry(redis_client), Clock()
    _online(registry, 10, 10)
    holder = _holder(registry, clock)
    holder.get()
    for i in range(5):
        _online(registry, 10 + i / 1000, 10)
    redis_client.xtrim(CHANGES, maxlen=2, approximate=False)  # older entries are gone
    clock.t = 2
    assert len(holder.get()) == 6 and holder.full_builds == 2


def test_a_flood_of_changes_means_a_full_rebuild(redis_client: redis.Redis) -> None:
    registry, clock = PresenceRegistry(redis_client), Clock()
    _online(registry, 10, 10)
    holder = _holder(registry, clock, max_changes=3)
    holder.get()
    for i in range(4):
        _online(registry, 10 + i / 1000, 10)
    clock.t = 2
    assert len(holder.get()) == 5 and holder.full_builds == 2


def test_silent_providers_are_not_indexed(redis_client: redis.Redis) -> None:
    registry, clock = PresenceRegistry(redis_client), Clock()
    live = _online(registry, 1, 1)
    _online(registry, 1.001, 1, seen=datetime.now(UTC).timestamp() - 600)
    assert _holder(registry, clock).get().ids.tolist() == [live]


def test_starts_empty_and_fills_when_providers_arrive(redis_client: redis.Redis) -> None:
    registry, clock = PresenceRegistry(redis_client), Clock()
    holder = _holder(registry, clock)
    assert len(holder.get()) == 0
    pid = _online(registry, 1, 1)
    clock.t = 2
    assert holder.get().ids.tolist() == [pid]
    assert len(holder.get(force=True).within(1, 1, 10)) == 1
