"""Provider presence: availability, live location, sampled history, geofences, and privacy.

The rules (coarsening, silence, geofence hysteresis) are plain functions; the commands apply
them with the caller's session (flush only) and the Redis stores. Positions are never logged.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core.config import Settings
from core.enums import OrderStatus, UserRole, VerificationStatus
from core.errors import NotFound
from core.geo import EARTH_RADIUS_M, great_circle_m
from db.models import GeofenceState, LocationSample, Order, OrderDispatch, OrderMatch, User
from db.queries import matching as match_queries
from db.queries import orders as order_queries
from db.session import note_for_commit
from domain.events import emit
from domain.presence_store import LocationStore, PresenceRegistry, ProviderLocation

GEOFENCE_ENTERED = "location:geofence_entered"
GEOFENCE_EXITED = "location:geofence_exited"
#: ``note_for_commit`` topic and live event: an assigned provider's new position.
LOCATION_UPDATED = "location:updated"
# Orders whose assigned provider's exact position the creator may see, and whose geofence we
# track: from acceptance until the stream ends.
TRACKED_STATUSES = frozenset({OrderStatus.ACCEPTED, OrderStatus.ACTIVE})
_M_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180.0


@dataclass(frozen=True)
class PresenceRules:
    offline_after_s: int = 120
    history_interval_s: int = 60
    coarsen_m: int = 500
    geofence_hysteresis_m: int = 25

    @classmethod
    def from_settings(cls, settings: Settings) -> PresenceRules:
        return cls(offline_after_s=settings.presence_offline_after_s,
                   history_interval_s=settings.location_history_interval_s,
                   coarsen_m=settings.location_coarsen_m,
                   geofence_hysteresis_m=settings.geofence_hysteresis_m)


@dataclass(frozen=True)
class Availability:
    online: bool
    max_travel_m: int | None
    location: ProviderLocation | None  # the provider's own exact position
    matchable: bool  # online with a live position: in the matching index


# ------------------------------------------------------------------------------------- rules
def coarsen(latitude: float, longitude: float, cell_m: float) -> tuple[float, float]:
    """The centre of the ~``cell_m`` grid cell holding the point.

    Snapping (not random noise) on purpose: noise averages out over repeated requests, a fixed
    cell never reveals more than the cell. Longitude cells widen in degrees with latitude so
    they stay ~``cell_m`` wide on the ground; near the poles a cell spans every longitude."""
    step_lat = cell_m / _M_PER_DEGREE
    row = math.floor((latitude + 90.0) / step_lat)
    lat_c = min(90.0, -90.0 + (row + 0.5) * step_lat)
    cos_lat = math.cos(math.radians(lat_c))
    if cos_lat * 360.0 <= step_lat:
        return round(lat_c, 5), 0.0
    step_lon = step_lat / cos_lat
    col = math.floor((longitude + 180.0) / step_lon)
    lon_c = -180.0 + (col + 0.5) * step_lon
    if lon_c >= 180.0:
        lon_c -= 360.0
    return round(lat_c, 5), round(lon_c, 5)


def coarse_distance(distance_m: float, cell_m: float) -> int:
    """A distance shown next to a coarsened position: to a fifth of the cell (100 m for
    500 m cells), so three orders cannot trilaterate a provider more finely than that."""
    step = max(cell_m / 5.0, 1.0)
    return int(round(distance_m / step) * step)


def is_live(seen_at: float | None, now: datetime, offline_after_s: float) -> bool:
    """A provider heard from within ``offline_after_s`` is online; silence means offline."""
    return seen_at is not None and now.timestamp() - seen_at <= offline_after_s


def inside_geofence(previous: bool | None, distance_m: float, radius_m: float,
                    hysteresis_m: float) -> bool:
    """Inside at or under the radius; outside only beyond radius + hysteresis, so GPS jitter at
    the boundary does not flap entered/exited. In the band the previous state holds."""
    if distance_m <= radius_m:
        return True
    if distance_m > radius_m + hysteresis_m:
        return False
    return bool(previous)


def may_see_exact(viewer_id: uuid.UUID, provider_id: uuid.UUID, order: Order | None) -> bool:
    """Only the provider, and the creator of the order they are assigned to while it is
    accepted or active, see an exact position; everybody else gets ``coarsen``."""
    if viewer_id == provider_id:
        return True
    return (order is not None and order.provider_id == provider_id
            and order.creator_id == viewer_id and order.status in TRACKED_STATUSES)


# ---------------------------------------------------------------------------------- commands
def set_availability(session: Session, store: LocationStore, registry: PresenceRegistry,
                     provider: User, *, online: bool, max_travel_m: int | None,
                     now: datetime, rules: PresenceRules) -> Availability:
    """Go online (matchable as soon as a live position is known) or offline (out of every new
    match at once). The track record used for ranking is computed here, once per toggle."""
    latest = store.latest(provider.id)
    live = latest if latest and _fresh(latest, now, rules) else None
    if not online:
        registry.go_offline(provider.id)
        return Availability(False, None, latest, False)
    acceptance, completion = match_queries.track_record(session, provider.id)
    profile: dict[str, Any] = {
        "online": True, "maxTravelM": max_travel_m,
        "verified": provider.verification_status is VerificationStatus.VERIFIED,
        "acceptanceRate": acceptance, "completionRate": completion,
    }
    registry.go_online(provider.id, profile, live, now.timestamp())
    return Availability(True, max_travel_m, latest, live is not None)


def availability(store: LocationStore, registry: PresenceRegistry, provider_id: uuid.UUID,
                 now: datetime, rules: PresenceRules) -> Availability:
    profile = registry.profile(provider_id)
    latest = store.latest(provider_id)
    if profile is None:
        return Availability(False, None, latest, False)
    matchable = bool(registry.records([str(provider_id)]))
    return Availability(True, profile.get("maxTravelM"), latest, matchable)


def report_location(session: Session, store: LocationStore, registry: PresenceRegistry,
                    provider_id: uuid.UUID, location: ProviderLocation, now: datetime,
                    rules: PresenceRules) -> bool:
    """A location update: latest position (Redis), matching presence (if online and the fix is
    live), a history sample at most once per interval, and geofence events for the orders the
    provider is assigned to. Returns False for an update older than the stored one (ignored)."""
    if not store.save(provider_id, location):
        return False
    if _fresh(location, now, rules):
        registry.locate(provider_id, location, now.timestamp())
    if registry.claim_sample(provider_id, rules.history_interval_s):
        # The gate is taken before the request commits: a rolled-back request loses one sample,
        # which is what sampling means anyway.
        session.add(LocationSample(provider_id=provider_id, latitude=location.latitude,
                                   longitude=location.longitude,
                                   accuracy_m=location.accuracy_m,
                                   recorded_at=location.recorded_at))
    track_geofences(session, provider_id, location, now, rules)
    session.flush()
    return True


def track_geofences(session: Session, provider_id: uuid.UUID, location: ProviderLocation,
                    now: datetime, rules: PresenceRules) -> list[str]:
    """Emit entered/exited for each accepted or active order of the provider whose geofence
    state changed. The first fix inside counts as entering; a first fix outside is recorded
    silently (the provider never was inside). Returns the events emitted."""
    emitted = []
    for order in match_queries.find_tracked_orders(session, provider_id):
        distance = great_circle_m(order.latitude, order.longitude,
                                  location.latitude, location.longitude)
        # Live only, after commit, to the order's room: its members (the creator and this
        # provider, see ``realtime``) are exactly who ``may_see_exact`` allows while tracked.
        note_for_commit(session, LOCATION_UPDATED, {
            "event": LOCATION_UPDATED, "orderId": str(order.id),
            "providerId": str(provider_id), "latitude": location.latitude,
            "longitude": location.longitude, "accuracy": location.accuracy_m,
            "recordedAt": location.recorded_at.isoformat(),
            "distanceMeters": round(distance), "at": now.isoformat(),
        })
        state = match_queries.find_geofence_state(session, order.id, for_update=True)
        previous = state.inside if state is not None and state.provider_id == provider_id \
            else None
        inside = inside_geofence(previous, distance, order.service_radius,
                                 rules.geofence_hysteresis_m)
        if state is None:
            state = GeofenceState(order_id=order.id, provider_id=provider_id, inside=inside,
                                  changed_at=now)
            session.add(state)
        elif previous is None:  # the order was re-assigned: start over for the new provider
            state.provider_id, state.inside, state.changed_at = provider_id, inside, now
        if previous == inside or (previous is None and not inside):
            continue
        state.inside, state.changed_at = inside, now
        topic = GEOFENCE_ENTERED if inside else GEOFENCE_EXITED
        # Participants learn the fact and a rounded distance, never the coordinates.
        emit(session, topic, str(order.id), {
            "event": topic, "orderId": str(order.id), "providerId": str(provider_id),
            "creatorId": str(order.creator_id), "status": order.status.value,
            "distanceMeters": round(distance), "serviceRadius": order.service_radius,
            "at": now.isoformat(),
        })
        emitted.append(topic)
    return emitted


def _fresh(location: ProviderLocation, now: datetime, rules: PresenceRules) -> bool:
    return (now - location.recorded_at).total_seconds() <= rules.offline_after_s


# ------------------------------------------------------------------------------- read views
@dataclass(frozen=True)
class Position:
    latitude: float
    longitude: float
    exact: bool
    accuracy_m: float | None = None
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class MatchView:
    match: OrderMatch
    provider_name: str
    distance_m: int
    position: Position | None


def position_for(viewer_id: uuid.UUID, provider_id: uuid.UUID, order: Order | None,
                 latitude: float, longitude: float, rules: PresenceRules, *,
                 accuracy_m: float | None = None,
                 recorded_at: datetime | None = None) -> Position:
    """The provider's position as ``viewer_id`` may see it (the one privacy rule)."""
    if may_see_exact(viewer_id, provider_id, order):
        return Position(latitude, longitude, True, accuracy_m, recorded_at)
    lat, lon = coarsen(latitude, longitude, rules.coarsen_m)
    return Position(lat, lon, False)


def matches_for(session: Session, registry: PresenceRegistry, order_id: uuid.UUID,
                viewer: User, now: datetime, rules: PresenceRules
                ) -> tuple[Order, list[MatchView], OrderDispatch | None]:
    """The order's ranked candidates for its creator (or an admin): live positions coarsened
    (exact only for the assigned provider while accepted/active), distances rounded. 404 for
    everybody else, including providers who may read the order itself."""
    order = order_queries.find_by_id(session, order_id)
    if order is None or (order.creator_id != viewer.id and viewer.role is not UserRole.ADMIN):
        raise NotFound("Order not found.")
    matches = match_queries.find_matches_for_order(session, order.id)
    names = match_queries.usernames(session, {m.provider_id for m in matches})
    live = registry.records([str(m.provider_id) for m in matches])
    views = []
    for m in matches:
        rec = live.get(str(m.provider_id))
        position = None
        if rec is not None and is_live(rec.get("seenAt"), now, rules.offline_after_s):
            position = position_for(viewer.id, m.provider_id, order, float(rec["lat"]),
                                    float(rec["lon"]), rules)
        distance = (round(m.distance_m) if position is not None and position.exact
                    else coarse_distance(m.distance_m, rules.coarsen_m))
        views.append(MatchView(m, names.get(m.provider_id, ""), distance, position))
    return order, views, match_queries.find_dispatch(session, order.id)


def assigned_provider_position(session: Session, store: LocationStore, order_id: uuid.UUID,
                               viewer: User, now: datetime, rules: PresenceRules
                               ) -> tuple[Order, Position | None]:
    """Where the order's assigned provider is: exact for its creator while accepted or active
    (and for the provider), coarsened for an admin or after the stream. 404 for anybody else
    or while nobody is assigned; None while the position is unknown or stale."""
    order = order_queries.find_by_id(session, order_id)
    if (order is None or order.provider_id is None
            or (viewer.id not in (order.creator_id, order.provider_id)
            and viewer.role is not UserRole.ADMIN)):
        raise NotFound("Order not found.")
    latest = store.latest(order.provider_id)
    if latest is None or not _fresh(latest, now, rules):
        return order, None
    return order, position_for(viewer.id, order.provider_id, order, latest.latitude,
                               latest.longitude, rules, accuracy_m=latest.accuracy_m,
                               recorded_at=latest.recorded_at)
