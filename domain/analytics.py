"""Analytics: a user's own figures (``/analytics/me``) and the platform's (``/admin/analytics``),
assembled from the set-based queries in ``db.queries.analytics`` and cached in Redis with the
spec's TTLs (userStats 30 min, analyticsData 12 h), through the one cache-aside helper
(``core.cache.CacheAside``; a Redis failure falls back to computing: analytics must not be down
because the cache is).

Freshness, per endpoint:

* **Per user** the cache key carries the user id, the window and a *version stamp*: the newest
  ``updated_at`` of the user's orders, applications and payments (one cheap indexed
  statement per request). Any write that changes the user's figures bumps that stamp, so the
  next read misses and recomputes: nobody reads their own write stale, with no invalidation
  hooks to forget. Superseded entries simply expire with the TTL.
* **Admin** figures are platform-wide, where no single write must show at once: the SQL part is
  cached for the spec's 12 h. Queue health and active providers by area are operational
  readings that a 12-hour-old copy would make useless, so they are read live on every request
  (one Redis pipeline and one hash read).

A default window ("the last 30 days") is cached under the key ``default`` rather than its
exact bounds, otherwise every request would name a new window and never hit; its edges may
therefore lag by up to the TTL, and the response says when it was computed.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy.orm import Session

from core.cache import CacheAside
from core.enums import OrderStatus, UserRole
from core.errors import ValidationFailed
from db.models import User
from db.queries import analytics as queries
from domain.money import format_minor

USER_STATS_TTL_S = 1800  # the spec's userStats
ANALYTICS_DATA_TTL_S = 43200  # the spec's analyticsData
DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=366)
AREA_CELL_DEG = 1.0  # coarse on purpose: about 111 km, never a provider's position
KEY_PREFIX = "taplive:analytics:"
CREATOR_ROLES = frozenset({UserRole.CREATOR, UserRole.BOTH})
PROVIDER_ROLES = frozenset({UserRole.PROVIDER, UserRole.BOTH})


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    explicit: bool  # False: the default "last 30 days", cached under one key

    @property
    def bounds(self) -> queries.Window:
        return self.since, self.until

    @property
    def cache_key(self) -> str:
        if not self.explicit:
            return "default"
        return f"{self.since.isoformat()}/{self.until.isoformat()}"

    def as_dict(self) -> dict[str, str]:
        return {"from": self.since.isoformat(), "to": self.until.isoformat()}


def resolve_window(since: datetime | None, until: datetime | None, now: datetime) -> Window:
    """The window asked for: defaults to the 30 days before ``until`` (or now); must be aware,
    ordered, and at most 366 days long."""
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.utcoffset() is None:
            raise ValidationFailed("Dates need a time zone.", details={name: ["Not aware."]})
    end = until or now
    start = since or end - DEFAULT_WINDOW
    if start >= end:
        raise ValidationFailed("'from' must be before 'to'.",
                               details={"from": ["Must be before 'to'."]})
    if end - start > MAX_WINDOW:
        raise ValidationFailed("The window is too long.",
                               details={"to": [f"At most {MAX_WINDOW.days} days after 'from'."]})
    return Window(start, end, explicit=since is not None or until is not None)


def _money(totals: Mapping[str, int]) -> dict[str, str]:
    return {currency: format_minor(minor, currency) for currency, minor in sorted(totals.items())}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _seconds(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 1)


# ------------------------------------------------------------------------------------ me
def compute_user_analytics(session: Session, user: User, window: Window) -> dict[str, Any]:
    """A creator's spend and orders by status; a provider's earnings, acceptance and
    completion rates and median time to match; a ``both`` account gets both sections."""
    out: dict[str, Any] = {"window": window.as_dict(), "creator": None, "provider": None}
    if user.role in CREATOR_ROLES:
        by_status = queries.count_orders_by_status(session, user.id, window.bounds)
        out["creator"] = {
            "ordersByStatus": {s.value: by_status.get(s, 0) for s in OrderStatus},
            "spend": _money(queries.sum_spend_by_currency(session, user.id, window.bounds)),
        }
    if user.role in PROVIDER_ROLES:
        applied, won = queries.count_applications(session, user.id, window.bounds)
        assigned, completed = queries.count_assigned_orders(session, user.id, window.bounds)
        out["provider"] = {
            "earnings": _money(queries.sum_earnings_by_currency(session, user.id,
                                                                window.bounds)),
            "applications": applied, "acceptedApplications": won,
            "acceptanceRate": _rate(won, applied),
            "assignedOrders": assigned, "completedOrders": completed,
            "completionRate": _rate(completed, assigned),
            "medianSecondsToMatch": _seconds(queries.median_seconds_to_accept(
                session, window.bounds, provider_id=user.id)),
        }
    return out


def user_analytics(session: Session, cache: redis.Redis, user: User, window: Window,
                   now: datetime) -> dict[str, Any]:
    """``compute_user_analytics``, cached per user, window and version stamp (see above)."""
    stamp = queries.latest_change_of_user(session, user.id)
    key = (f"{KEY_PREFIX}me:{user.id}:{user.role.value}:{window.cache_key}:"
           f"{stamp.isoformat() if stamp else '-'}")
    return CacheAside(cache, USER_STATS_TTL_S).read(
        key, lambda: compute_user_analytics(session, user, window) | {
            "computedAt": now.isoformat()})


# --------------------------------------------------------------------------------- admin
def compute_platform_analytics(session: Session, window: Window) -> dict[str, Any]:
    """Fill rate, median time from post to accept, GMV and fees by currency."""
    posted, filled = queries.count_posted_and_accepted(session, window.bounds)
    settled = queries.sum_settled_by_currency(session, window.bounds)
    return {
        "window": window.as_dict(),
        "ordersPosted": posted, "ordersAccepted": filled, "fillRate": _rate(filled, posted),
        "medianSecondsToAccept": _seconds(queries.median_seconds_to_accept(session,
                                                                           window.bounds)),
        "money": {c: {"gmv": format_minor(g, c), "platformFees": format_minor(p, c),
                      "processingFees": format_minor(f, c), "settlements": n}
                  for c, (g, p, f, n) in sorted(settled.items())},
    }


def providers_by_area(records: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Available providers counted per coarse grid cell (south-west corner, whole degrees):
    where supply is, never where anyone is."""
    cells: Counter[tuple[int, int]] = Counter()
    for rec in records.values():
        try:
            lat, lon = float(rec["lat"]), float(rec["lon"])
        except (KeyError, TypeError, ValueError):
            continue  # a record without a position is not in any area
        cells[(math.floor(lat / AREA_CELL_DEG), math.floor(lon / AREA_CELL_DEG))] += 1
    return [{"cellLat": la * AREA_CELL_DEG, "cellLon": lo * AREA_CELL_DEG,
             "cellSizeDeg": AREA_CELL_DEG, "providers": n}
            for (la, lo), n in sorted(cells.items(), key=lambda kv: (-kv[1], kv[0]))]


def platform_analytics(session: Session, cache: redis.Redis, window: Window, now: datetime,
                       *, available: Callable[[], Mapping[str, Mapping[str, Any]]],
                       queue_depths: Callable[[], Mapping[str, int]]) -> dict[str, Any]:
    """The cached SQL figures plus live supply by area and queue health."""
    key = f"{KEY_PREFIX}admin:{window.cache_key}"
    figures = CacheAside(cache, ANALYTICS_DATA_TTL_S).read(
        key, lambda: compute_platform_analytics(session, window) | {
            "computedAt": now.isoformat()})
    return figures | {
        "activeProvidersByArea": providers_by_area(available()),
        "queues": [{"queue": q, "depth": d} for q, d in queue_depths().items()],
    }


def user_cache_keys(cache: redis.Redis, user_id: uuid.UUID) -> list[str]:
    """The user's cached entries (tests and operators: what is cached for whom)."""
    return CacheAside(cache, USER_STATS_TTL_S).keys(f"{KEY_PREFIX}me:{user_id}:*")
