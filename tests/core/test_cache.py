"""The one cache-aside helper: hits, version counters, and Redis failing without failing reads."""

from __future__ import annotations

from collections.abc import Callable

import redis

from core.cache import VERSION_TTL_S, CacheAside


def _counter() -> tuple[list[int], Callable[[], dict[str, int]]]:
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    return calls, compute


def test_a_hit_is_served_until_a_version_it_was_read_under_moves(
        redis_client: redis.Redis) -> None:
    cache = CacheAside(redis_client, ttl_s=60)
    calls, compute = _counter()
    read = lambda: cache.read("k", compute, versions=("v:a", "v:b"))  # noqa: E731
    assert read() == {"n": 1}
    assert read() == {"n": 1}  # a hit
    cache.bump(["v:b"])
    assert read() == {"n": 2}  # stale after the bump: recomputed and stored again
    assert read() == {"n": 2}
    assert 0 < redis_client.ttl("v:b") <= VERSION_TTL_S
    assert 0 < redis_client.ttl("k") <= 60
    # A bump of a counter the entry was not read under changes nothing.
    cache.bump(["v:other"])
    assert read() == {"n": 2} and len(calls) == 2


def test_without_versions_the_key_alone_names_the_entry(redis_client: redis.Redis) -> None:
    cache = CacheAside(redis_client, ttl_s=60)
    _, compute = _counter()
    assert [cache.read("plain", compute) for _ in range(3)] == [{"n": 1}] * 3
    assert cache.keys("pla*") == ["plain"]


def test_an_entry_of_another_format_is_a_miss_and_is_replaced(redis_client: redis.Redis) -> None:
    """Analytics stored bare JSON before it used this helper: such an entry is recomputed."""
    redis_client.set("old", '{"window": {}, "creator": null}')
    cache = CacheAside(redis_client, ttl_s=60)
    _, compute = _counter()
    assert cache.read("old", compute) == {"n": 1}
    assert cache.read("old", compute) == {"n": 1}


def test_redis_down_computes_every_time_and_never_raises() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    cache = CacheAside(dead, ttl_s=60)
    _, compute = _counter()
    assert [cache.read("k", compute, versions=("v",)) for _ in range(2)] == [{"n": 1}, {"n": 2}]
    cache.bump(["v"])  # logged, not raised: the commit it follows has happened


def test_a_zero_ttl_turns_the_cache_off(redis_client: redis.Redis) -> None:
    cache = CacheAside(redis_client, ttl_s=0)
    _, compute = _counter()
    assert [cache.read("k", compute, versions=("v",)) for _ in range(3)] == [
        {"n": 1}, {"n": 2}, {"n": 3}]
    assert redis_client.exists("k") == 0
