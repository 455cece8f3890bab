"""Providers' latest known positions, in Redis (they change every few seconds; PostgreSQL keeps
only sampled history). Precise positions are never logged."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

KEY = "taplive:provider:location:{}"


@dataclass(frozen=True)
class ProviderLocation:
    latitude: float
    longitude: float
    accuracy_m: float | None
    recorded_at: datetime


class LocationStore:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self._redis = client
        self._ttl_s = ttl_s  # after this long without an update the position is forgotten

    def save(self, provider_id: uuid.UUID, location: ProviderLocation) -> bool:
        """Store if newer than what we have (updates can arrive out of order). Returns whether
        it was stored."""
        key = KEY.format(provider_id)
        current = self._redis.hget(key, "recorded_at")
        if current and datetime.fromisoformat(str(current)) >= location.recorded_at:
            return False
        pipe = self._redis.pipeline()
        pipe.hset(key, mapping={
            "latitude": repr(location.latitude),
            "longitude": repr(location.longitude),
            "accuracy_m": "" if location.accuracy_m is None else repr(location.accuracy_m),
            "recorded_at": location.recorded_at.astimezone(UTC).isoformat(),
        })
        pipe.expire(key, self._ttl_s)
        pipe.execute()
        return True

    def latest(self, provider_id: uuid.UUID) -> ProviderLocation | None:
        raw = self._redis.hgetall(KEY.format(provider_id))
        if not raw:
            return None
        values = {str(k): str(v) for k, v in raw.items()}
        return ProviderLocation(
            latitude=float(values["latitude"]),
            longitude=float(values["longitude"]),
            accuracy_m=float(values["accuracy_m"]) if values.get("accuracy_m") else None,
            recorded_at=datetime.fromisoformat(values["recorded_at"]),
        )
