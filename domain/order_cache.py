"""The order read caches (``GET /orders/{id}``, ``GET /orders``): never stale.

Measured first (``bench.cache_bench``, docs/orders.md "Caching"): a hit answers in a quarter to
a half of the real read's time. Built on ``core.cache.CacheAside``; correctness rests on its
version counters, not on deleting entries:

* Every committed change to an order as the API shows it is noted by the domain
  (``domain.events.ORDER_VIEW_CHANGED``: order id, creator, provider) and, in a
  ``Database.on_commit`` hook (``invalidate_committed_changes``), increments ``v:o:<order>`` and
  ``v:u:<participant>`` for each participant; erasure's scrub increments ``v:all``. The hook
  runs inside the request's commit, before the response leaves, so a client never reads its
  own write stale.
* An entry stores the versions it was read under, and the versions are read (one ``MGET`` with
  the entry) *before* the database, so a reader that raced a write is never served after it.
* Entries live ``read_cache_ttl_s`` (60 s), version keys a day (``core.cache.VERSION_TTL_S``).
  If the increment itself fails (Redis unreachable), the TTL bounds the stale window, and the
  token check fails closed meanwhile.

Access control is not cached: a cached order is shown only to whom ``domain.orders.can_view``
allows, checked on every request from the participants kept in the entry.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

import redis
from sqlalchemy.orm import Session

from core.cache import CacheAside, digest_key
from db.session import committed_notes
from domain.events import ORDER_VIEW_CHANGED

PREFIX = "taplive:cache:"
ALL_VERSION = f"{PREFIX}v:all"


def order_version_key(order_id: object) -> str:
    return f"{PREFIX}v:o:{order_id}"


def user_orders_version_key(user_id: object) -> str:
    return f"{PREFIX}v:u:{user_id}"


class OrderReadCache:
    """One per process (the composition root builds it; ``invalidate_committed_changes`` is
    its ``Database.on_commit`` hook)."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.cache = CacheAside(client, ttl_s)

    def order(self, order_id: uuid.UUID,
              load: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        """One order as the API shows it (or None), the same entry for every viewer."""
        return self.cache.read(digest_key(PREFIX, "order", order_id), load,
                               versions=(ALL_VERSION, order_version_key(order_id)))

    def user_orders(self, user_id: uuid.UUID, args: Mapping[str, Any],
                    page: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """One page of a user's orders, per user and query arguments."""
        return self.cache.read(digest_key(PREFIX, "orders", user_id, sorted(args.items())),
                               page, versions=(ALL_VERSION, user_orders_version_key(user_id)))

    def invalidate_committed_changes(self, session: Session) -> None:
        """``Database.on_commit`` hook: bump the versions of what this commit changed."""
        keys: set[str] = set()
        for change in committed_notes(session, ORDER_VIEW_CHANGED):
            if change == ("*",):
                keys.add(ALL_VERSION)
                continue
            order_id, *participants = change
            keys.add(order_version_key(order_id))
            keys.update(user_orders_version_key(p) for p in participants if p)
        self.cache.bump(keys)
