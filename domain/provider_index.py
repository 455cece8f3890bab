"""The matching index of one worker process: built once from the Redis snapshot of available
providers, kept in memory, and brought up to date from the presence change log.

Why this shape: a full rebuild costs ~0.45 s per million providers (plus reading and parsing
the snapshot), so it must not happen per task. Each task asks ``get()``; at most once per
``max_staleness_s`` that costs one XRANGE: nothing new -> the same index; a few changes ->
``ProviderIndex.with_changes`` (unchanged providers carried over as array slices); a gap in
the log (trimmed while we were idle) or a flood of changes -> a full rebuild. Between checks
the index may be that many seconds old, which is why every candidate it proposes is re-checked
against live presence before anyone is invited (``domain.matching_service``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from domain.presence_store import PresenceChange, PresenceRegistry
from matching import ProviderIndex, ProviderRecord

log = logging.getLogger(__name__)


def to_record(rec: Mapping[str, Any], now: float) -> ProviderRecord:
    """A presence record (``domain.presence_store``) as the engine's row."""
    def rate(name: str) -> float:
        value = rec.get(name)
        return math.nan if value is None else float(value)

    travel = rec.get("maxTravelM")
    seen = rec.get("seenAt")
    return ProviderRecord(
        lat=float(rec["lat"]), lon=float(rec["lon"]),
        max_travel_m=math.inf if travel is None else float(travel),
        verified=bool(rec.get("verified")),
        seconds_since_active=math.nan if seen is None else max(now - float(seen), 0.0),
        acceptance_rate=rate("acceptanceRate"), completion_rate=rate("completionRate"))


class ProviderIndexHolder:
    """Thread-safe holder of the current ``ProviderIndex`` (its ``version`` is the presence
    change-log sequence it reflects)."""

    def __init__(self, registry: PresenceRegistry, *, max_staleness_s: float,
                 max_changes: int, offline_after_s: float,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._registry = registry
        self._max_staleness_s = max_staleness_s
        self._max_changes = max_changes
        self._offline_after_s = offline_after_s
        self._clock, self._wall = clock, wall
        self._lock = threading.Lock()
        self._index: ProviderIndex | None = None
        self._stream_id = "0-0"
        self._checked_at = -math.inf
        self.full_builds = 0
        self.incremental_updates = 0

    def get(self, *, force: bool = False) -> ProviderIndex:
        """The index, refreshed if it was last checked over ``max_staleness_s`` ago (or
        ``force``: the batch re-match wants the newest positions)."""
        with self._lock:
            now = self._clock()
            if (self._index is not None and not force
                    and now - self._checked_at < self._max_staleness_s):
                return self._index
            self._checked_at = now
            if self._index is None or len(self._index) == 0:
                # An empty index has no id dtype to extend; rebuilding it is free anyway.
                if self._index is None or self._registry.version() != self._index.version:
                    self._rebuild()
                assert self._index is not None
                return self._index
            changes = self._registry.changes_after(self._stream_id, self._max_changes + 1)
            if changes:
                if changes[0].seq != self._index.version + 1 or len(changes) > self._max_changes:
                    self._rebuild()  # the log was trimmed past us, or a full read is cheaper
                else:
                    self._apply(changes)
            return self._index

    def _rebuild(self) -> None:
        snapshot = self._registry.snapshot()
        now = self._wall()
        live: dict[Hashable, ProviderRecord] = {
            pid: to_record(rec, now) for pid, rec in snapshot.records.items()
            if now - float(rec.get("seenAt") or 0) <= self._offline_after_s}
        self._index = ProviderIndex.from_snapshot(live, version=snapshot.version)
        self._stream_id = snapshot.stream_id
        self.full_builds += 1
        log.info("matching index built", extra={"providers": len(self._index),
                                                "version": snapshot.version})

    def _apply(self, changes: list[PresenceChange]) -> None:
        assert self._index is not None
        now = self._wall()
        upserts: dict[Hashable, ProviderRecord] = {}
        removals: set[Hashable] = set()
        for change in changes:  # the last change of a provider wins
            if change.op == "upsert" and change.record is not None:
                upserts[change.provider_id] = to_record(change.record, now)
                removals.discard(change.provider_id)
            else:
                upserts.pop(change.provider_id, None)
                removals.add(change.provider_id)
        index = self._index.with_changes(upserts, removals)
        index.version = changes[-1].seq  # the log sequence, not with_changes' +1
        self._index = index
        self._stream_id = changes[-1].stream_id
        self.incremental_updates += 1

