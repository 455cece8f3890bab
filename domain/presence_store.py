"""Providers' latest known positions, in Redis (they change every few seconds; PostgreSQL keeps
only sampled history). Precise positions are never logged."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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

    def forget(self, provider_id: uuid.UUID) -> None:
        """Drop the provider's position now (account erasure), not when it expires."""
        self._redis.delete(KEY.format(provider_id))

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


# ---------------------------------------------------------------------------------------------
# Presence registry: who is available for matching, where, and a change log for the workers.
#
# Layout (all writes go through the Lua scripts below, so each change is atomic):
#   PROFILE   hash  id -> JSON of the availability (online, maxTravelM, signals)
#   AVAILABLE hash  id -> JSON record the matching index is built from (profile + position)
#   SEEN      zset  id -> epoch seconds of the last location update (silence detection)
#   VERSION   int   bumped on every change of AVAILABLE
#   CHANGES   stream  one entry per change: seq (= VERSION), op (upsert|remove), id, rec
# A worker builds its index from AVAILABLE + VERSION (one MULTI) and then applies CHANGES
# after that version; a gap (trimmed log) means a full rebuild.
PROFILE = "taplive:presence:profile"
AVAILABLE = "taplive:presence:available"
SEEN = "taplive:presence:seen"
VERSION = "taplive:presence:version"
CHANGES = "taplive:presence:changes"
_KEYS = [PROFILE, AVAILABLE, SEEN, VERSION, CHANGES]

# ARGV: maxlen, id, profile json, record json ('' = no fresh position), seen epoch
_SET_PROFILE = """
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if ARGV[4] == '' then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[2])
local v = redis.call('INCR', KEYS[4])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[1], '*', 'seq', v, 'op', 'upsert',
           'id', ARGV[2], 'rec', ARGV[4])
return v
"""
# ARGV: maxlen, id, lat, lon, seen epoch. Only an online provider's position is published.
_LOCATE = """
local p = redis.call('HGET', KEYS[1], ARGV[2])
if not p then return 0 end
local rec = cjson.decode(p)
rec['lat'] = tonumber(ARGV[3])
rec['lon'] = tonumber(ARGV[4])
rec['seenAt'] = tonumber(ARGV[5])
local enc = cjson.encode(rec)
redis.call('HSET', KEYS[2], ARGV[2], enc)
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[2])
local v = redis.call('INCR', KEYS[4])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[1], '*', 'seq', v, 'op', 'upsert',
           'id', ARGV[2], 'rec', enc)
return v
"""
# ARGV: maxlen, id, drop profile ('1'|'0'), silent-before epoch ('' = unconditional)
_REMOVE = """
if ARGV[4] ~= '' then
  local s = redis.call('ZSCORE', KEYS[3], ARGV[2])
  if s and tonumber(s) >= tonumber(ARGV[4]) then return 0 end
end
if ARGV[3] == '1' then redis.call('HDEL', KEYS[1], ARGV[2]) end
redis.call('ZREM', KEYS[3], ARGV[2])
if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then return 0 end
local v = redis.call('INCR', KEYS[4])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[1], '*', 'seq', v, 'op', 'remove',
           'id', ARGV[2], 'rec', '')
return v
"""


@dataclass(frozen=True)
class PresenceChange:
    seq: int
    stream_id: str
    op: str  # "upsert" | "remove"
    provider_id: str
    record: dict[str, Any] | None


@dataclass(frozen=True)
class PresenceSnapshot:
    version: int
    stream_id: str  # the change-log entry of ``version`` ("0-0" when the log is empty)
    records: dict[str, dict[str, Any]]


class PresenceRegistry:
    """Availability and live positions of providers, for matching (see the layout above).

    Records carry no personal data beyond the position, which never leaves Redis, the worker's
    memory and the responses the privacy rules allow (``domain.presence``)."""

    def __init__(self, client: redis.Redis, *, change_log_max: int = 200_000) -> None:
        self._redis = client
        self._maxlen = change_log_max
        self._set_profile = client.register_script(_SET_PROFILE)
        self._locate = client.register_script(_LOCATE)
        self._remove = client.register_script(_REMOVE)

    # ------------------------------------------------------------------ writes
    def go_online(self, provider_id: uuid.UUID, profile: dict[str, Any],
                  position: ProviderLocation | None, seen_at: float) -> int:
        """Mark available with ``profile``; with a live ``position`` the provider is matchable at
        once. ``seen_at`` is the server's epoch time. Returns the new version (0: nothing
        matchable changed)."""
        record = ""
        if position is not None:
            record = json.dumps(profile | {"lat": position.latitude, "lon": position.longitude,
                                           "seenAt": seen_at})
        return int(self._set_profile(keys=_KEYS, args=[
            self._maxlen, str(provider_id), json.dumps(profile), record, repr(seen_at)]))

    def go_offline(self, provider_id: uuid.UUID) -> int:
        return int(self._remove(keys=_KEYS, args=[self._maxlen, str(provider_id), "1", ""]))

    def locate(self, provider_id: uuid.UUID, location: ProviderLocation,
               seen_at: float) -> int:
        """Publish a new position if the provider is online (else a no-op returning 0).
        ``seen_at`` is the server's epoch time: silence is judged on our clock, not the
        device's."""
        return int(self._locate(keys=_KEYS, args=[
            self._maxlen, str(provider_id), repr(location.latitude), repr(location.longitude),
            repr(seen_at)]))

    def drop_silent(self, silent_before: float, limit: int = 10_000) -> list[str]:
        """Take providers with no update since ``silent_before`` (epoch s) out of matching; they
        stay online and come back with their next update. Returns the ids dropped."""
        ids = [str(i) for i in self._redis.zrangebyscore(SEEN, "-inf", f"({silent_before}",
                                                         start=0, num=limit)]
        return [i for i in ids
                if int(self._remove(keys=_KEYS, args=[self._maxlen, i, "0",
                                                      repr(silent_before)]))]

    def claim_sample(self, provider_id: uuid.UUID, interval_s: int) -> bool:
        """True at most once per ``interval_s`` per provider: the history sampling gate (one
        SET NX in Redis instead of a database read on every ping)."""
        key = f"taplive:presence:sampled:{provider_id}"
        return bool(self._redis.set(key, "1", nx=True, ex=interval_s))

    # ------------------------------------------------------------------- reads
    def profile(self, provider_id: uuid.UUID) -> dict[str, Any] | None:
        raw = self._redis.hget(PROFILE, str(provider_id))
        return json.loads(str(raw)) if raw else None

    def records(self, provider_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Current matchable records of these providers (absent = not available now)."""
        if not provider_ids:
            return {}
        raw = self._redis.hmget(AVAILABLE, provider_ids)
        return {pid: json.loads(str(r)) for pid, r in zip(provider_ids, raw, strict=True) if r}

    def version(self) -> int:
        return int(str(self._redis.get(VERSION) or 0))

    def snapshot(self) -> PresenceSnapshot:
        """Every available record and the version they are at, read atomically."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(VERSION)
        pipe.xrevrange(CHANGES, count=1)
        pipe.hgetall(AVAILABLE)
        version, last, available = pipe.execute()
        return PresenceSnapshot(
            version=int(version or 0),
            stream_id=str(last[0][0]) if last else "0-0",
            records={str(k): json.loads(str(v)) for k, v in available.items()},
        )

    def changes_after(self, stream_id: str, limit: int) -> list[PresenceChange]:
        """Up to ``limit`` change-log entries after ``stream_id``, oldest first."""
        ms, _, seq = stream_id.partition("-")
        start = f"{ms}-{int(seq or 0) + 1}"  # exclusive start, spelled for any Redis version
        out = []
        entries: list[tuple[str, dict[str, str]]] = self._redis.xrange(  # type: ignore[assignment]
            CHANGES, min=start, count=limit)
        for entry_id, fields in entries:
            rec = fields.get("rec")
            out.append(PresenceChange(seq=int(fields["seq"]), stream_id=str(entry_id),
                                      op=str(fields["op"]), provider_id=str(fields["id"]),
                                      record=json.loads(rec) if rec else None))
        return out
