"""Cache-aside in Redis, the one scheme every cached read uses (the order reads in
``domain/order_cache.py``, analytics in ``domain/analytics.py``).

An entry is ``{"v": [versions...], "d": data}``: the data and the *version counters* it was
read under. A reader fetches the counters and the entry in one ``MGET``, *before* computing, and
serves the entry only while every counter still holds the value stored with it; a writer makes
entries stale by incrementing a counter (``bump``), never by deleting entries. A reader that
raced a write thus stores its result under the old counters, and nobody is served it after the
increment. A read with no counters (``versions=()``) is plain cache-aside: freshness then has to
come from the key itself (analytics puts a version stamp in it) or from the TTL.

Redis failing is never the reader's failure: the read falls back to computing, and a failed
store or bump is logged (the TTL bounds how long a missed bump can serve stale data).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson
import redis

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Version counters outlive any entry by far, and each bump refreshes them: a counter that
#: expired and starts again from 1 can never match a live entry stored under its old value.
VERSION_TTL_S = 86_400


class CacheAside:
    """JSON-able results of ``compute`` kept ``ttl_s`` seconds in ``client``; ``ttl_s <= 0``
    turns caching off (every read computes)."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self._client = client
        self.ttl_s = ttl_s

    def read(self, key: str, compute: Callable[[], T], *, versions: Sequence[str] = ()) -> T:
        """``compute()``'s result, from the cache when ``key`` was stored under the current
        values of the ``versions`` counters; else computed, stored and returned."""
        if self.ttl_s <= 0:
            return compute()
        try:
            *current, raw = self._client.mget([*versions, key])
        except redis.RedisError:
            log.warning("cache unavailable", exc_info=True)
            return compute()
        stamp = [value or "0" for value in current]
        if raw is not None:
            entry = orjson.loads(raw)
            # Anything else under the key (an entry of an older format) is a miss, overwritten.
            if isinstance(entry, dict) and entry.get("v") == stamp:
                found: T = entry["d"]
                return found
        data = compute()
        try:
            self._client.set(key, orjson.dumps({"v": stamp, "d": data}), ex=self.ttl_s)
        except redis.RedisError:
            log.warning("could not store a cache entry", exc_info=True)
        return data

    def bump(self, versions: Iterable[str]) -> None:
        """Make every entry read under any of ``versions`` stale (one pipeline)."""
        names = sorted(set(versions))
        if not names:
            return
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.incr(name)
            pipe.expire(name, VERSION_TTL_S)
        try:
            pipe.execute()
        except redis.RedisError:
            log.error("could not invalidate cached reads", exc_info=True)

    def keys(self, pattern: str) -> list[str]:
        """The entries matching ``pattern`` (tests and operators: what is cached)."""
        return [str(k) for k in self._client.scan_iter(pattern)]


def digest_key(prefix: str, kind: str, *parts: Any) -> str:
    """A short, fixed-length key for an entry named by arbitrary arguments."""
    digest = hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()
    return f"{prefix}{kind}:{digest}"
