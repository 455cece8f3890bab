"""Presence rules: coarsening, silence, geofence hysteresis and who may see an exact position."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.enums import OrderStatus
from core.geo import great_circle_m
from domain.presence import coarse_distance, coarsen, inside_geofence, is_live, may_see_exact

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@given(st.floats(-89.9, 89.9), st.floats(-180, 180))
def test_coarsening_stays_within_a_cell_and_is_deterministic(lat: float, lon: float) -> None:
    clat, clon = coarsen(lat, lon, 500)
    assert coarsen(lat, lon, 500) == (clat, clon)
    # Half a cell's diagonal (~354 m) plus rounding, anywhere off the poles.
    assert great_circle_m(lat, lon, clat, clon) <= 360
    assert -90 <= clat <= 90 and -180 <= clon < 180


def test_nearby_points_share_a_cell_so_repeating_requests_reveals_nothing_more() -> None:
    base = coarsen(51.50740, -0.12780, 500)
    assert coarsen(51.50741, -0.12781, 500) == base  # a metre away: same answer
    assert coarsen(51.5074, -0.1278, 500) != (51.5074, -0.1278)


def test_coarsening_near_a_pole_and_across_the_antimeridian() -> None:
    assert coarsen(89.999, 123.0, 500)[1] == 0.0  # every longitude is one cell up there
    east, west = coarsen(0.0, 179.9999, 500), coarsen(0.0, -179.9999, 500)
    assert great_circle_m(*east, *west) < 1000


def test_coarse_distance_rounds_to_a_fifth_of_the_cell() -> None:
    assert coarse_distance(1234.0, 500) == 1200
    assert coarse_distance(49.0, 500) == 0
    assert coarse_distance(151.0, 500) == 200


def test_silence_means_offline() -> None:
    assert is_live((NOW - timedelta(seconds=119)).timestamp(), NOW, 120)
    assert not is_live((NOW - timedelta(seconds=121)).timestamp(), NOW, 120)
    assert not is_live(None, NOW, 120)


@pytest.mark.parametrize(("previous", "distance", "expected"), [
    (None, 500, True), (None, 510, False), (False, 510, False), (True, 510, True),
    (True, 525, True), (True, 526, False), (False, 499, True),
])
def test_geofence_hysteresis(previous: bool | None, distance: float, expected: bool) -> None:
    assert inside_geofence(previous, distance, 500, 25) is expected


def _order(creator: uuid.UUID, provider: uuid.UUID | None, status: OrderStatus) -> Any:
    return SimpleNamespace(creator_id=creator, provider_id=provider, status=status)


def test_only_the_provider_and_their_creator_while_live_see_exact_positions() -> None:
    creator, provider, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert may_see_exact(provider, provider, None)
    assert not may_see_exact(creator, provider, None)
    for status in (OrderStatus.ACCEPTED, OrderStatus.ACTIVE):
        assert may_see_exact(creator, provider, _order(creator, provider, status))
        assert not may_see_exact(other, provider, _order(creator, provider, status))
    for status in (OrderStatus.PENDING, OrderStatus.COMPLETED, OrderStatus.CANCELLED):
        assert not may_see_exact(creator, provider, _order(creator, provider, status))
    assert not may_see_exact(creator, provider, _order(creator, other, OrderStatus.ACTIVE))
