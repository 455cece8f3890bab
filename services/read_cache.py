"""Cache-aside for the order reads (``GET /orders/{id}``, ``GET /orders``), never stale.

Measured first (``bench.cache_bench``, docs/orders.md "Caching"): a hit answers in a quarter to
a half of the real read's time. Correctness rests on version counters, not on deleting entries:

* Every committed change to an order as the API shows it is noted by the domain
  (``domain.events.ORDER_VIEW_CHANGED``: order id, creator, provider) and, in a
  ``Database.on_commit`` hook, increments ``v:o:<order>`` and ``v:u:<participant>`` for each
  participant; erasure's scrub increments ``v:all``. The hook runs inside the request's commit,
  before the response leaves, so a client never reads its own write stale.
* An entry stores the versions it was read under, and the versions are read (one ``MGET`` with
  the entry) *before* the database. A reader that raced a write therefore stores its result
  under the old versions, and nobody is served it after the write's increment.
* Entries live ``READ_CACHE_TTL_S`` (60 s), version keys ``VERSION_TTL_S`` (a day, refreshed
  by each increment): a counter that expired and starts again can never match a live entry.
  If the increment itself fails (Redis unreachable), the TTL bounds the stale window, and the
  token check fails closed meanwhile.

Access control is not cached: a cached order is shown only to whom ``domain.orders.can_view``
allows, checked on every request from the participants kept in the entry.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
import redis
from sqlalchemy.orm import Session

from db.session import committed_notes
from domain.events import ORDER_VIEW_CHANGED

log = logging.getLogger(__name__)

PREFIX = "taplive:cache:"
ALL_VERSION = f"{PREFIX}v:all"
VERSION_TTL_S = 86_400


def order_version_key(order_id: object) -> str:
    return f"{PREFIX}v:o:{order_id}"


def user_orders_version_key(user_id: object) -> str:
    return f"{PREFIX}v:u:{user_id}"


def entry_key(kind: str, *parts: object) -> str:
    digest = hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()
    return f"{PREFIX}{kind}:{digest}"


class ReadCache:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self._client = client
        self.ttl_s = ttl_s

    def read(self, version_key: str, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``'s JSON-able result, from the cache when it was stored under the
        current versions; else computed, stored and returned."""
        if self.ttl_s <= 0:
            return compute()
        try:
            everything, scope, raw = self._client.mget([ALL_VERSION, version_key, key])
        except redis.RedisError:
            log.warning("read cache unavailable", exc_info=True)
            return compute()
        versions = [everything or "0", scope or "0"]
        if raw is not None:
            entry = orjson.loads(raw)
            if entry["v"] == versions:
                return entry["d"]
        data = compute()
        try:
            self._client.set(key, orjson.dumps({"v": versions, "d": data}), ex=self.ttl_s)
        except redis.RedisError:
            log.warning("could not store a cache entry", exc_info=True)
        return data

    def invalidate_committed_changes(self, session: Session) -> None:
        """``Database.on_commit`` hook: bump the versions of what this commit changed."""
        changes = committed_notes(session, ORDER_VIEW_CHANGED)
        if not changes:
            return
        keys: set[str] = set()
        for change in changes:
            if change == ("*",):
                keys.add(ALL_VERSION)
                continue
            order_id, *participants = change
            keys.add(order_version_key(order_id))
            keys.update(user_orders_version_key(p) for p in participants if p)
        pipe = self._client.pipeline(transaction=False)
        for name in sorted(keys):
            pipe.incr(name)
            pipe.expire(name, VERSION_TTL_S)
        try:
            pipe.execute()
        except redis.RedisError:
            log.error("could not invalidate cached order reads", exc_info=True)
