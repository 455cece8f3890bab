"""The nearby-orders query against a brute-force great-circle scan, on both databases."""

from __future__ import annotations

import itertools
import random

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from core.geo import bounding_box, great_circle_m
from db.models import Order
from db.queries.orders import find_pending_near
from tests.factories import OrderFactory, UserFactory

# (name, centre latitude, centre longitude, spread in degrees, radius in metres)
SCENARIOS = [
    ("city", 51.5074, -0.1278, 0.05, 2_000),
    ("antimeridian-east", -16.5, 179.995, 0.08, 5_000),
    ("antimeridian-west", 65.0, -179.99, 0.2, 8_000),
    ("north-pole", 89.97, 10.0, 0.05, 3_000),
    ("south-pole", -89.99, -120.0, 0.02, 1_500),
    ("equator", 0.0, 0.0, 0.03, 1_500),
]


def _wrap(lon: float) -> float:
    return ((lon + 180.0) % 360.0) - 180.0


@pytest.mark.parametrize(("name", "lat", "lon", "spread", "radius"), SCENARIOS,
                         ids=[s[0] for s in SCENARIOS])
def test_nearby_matches_brute_force(any_session: Session, name: str, lat: float, lon: float,
                                    spread: float, radius: float) -> None:
    rng = random.Random(name)
    creator = UserFactory()
    points = []
    for _ in range(150):
        plat = max(-90.0, min(90.0, lat + rng.uniform(-spread, spread)))
        plon = _wrap(lon + rng.uniform(-spread, spread) * (4 if abs(lat) > 80 else 1))
        points.append((plat, plon))
    # Decoys: same place but not pending, or far away.
    orders = [OrderFactory(creator=creator, latitude=a, longitude=b) for a, b in points]
    OrderFactory(creator=creator, latitude=lat, longitude=lon, status=OrderStatus.CANCELLED)
    OrderFactory(creator=creator, latitude=-lat / 2, longitude=_wrap(lon + 90))

    result = find_pending_near(any_session, lat, lon, radius, limit=1000)

    expected = sorted(
        ((great_circle_m(lat, lon, o.latitude, o.longitude), o.id) for o in orders),
    )
    # Ignore points within a millimetre of the boundary: either answer is right there.
    expected_ids = [oid for d, oid in expected if d <= radius - 1e-3]
    borderline = {oid for d, oid in expected if abs(d - radius) <= 1e-3}
    got_ids = [n.order.id for n in result if n.order.id not in borderline]
    assert set(got_ids) == set(expected_ids), name
    # Nearest first: PostgreSQL's KNN operator and our haversine may order two orders whose
    # distances differ by under a millimetre either way; anything larger must be in order.
    exact = {oid: d for d, oid in expected}
    got_distances = [exact[oid] for oid in got_ids]
    assert all(b >= a - 1e-3 for a, b in itertools.pairwise(got_distances))
    assert 0 < len(expected_ids) < len(orders), "scenario should include and exclude points"
    for near in result:
        exact = great_circle_m(lat, lon, near.order.latitude, near.order.longitude)
        assert near.distance_m == pytest.approx(exact, rel=1e-6, abs=1e-3)
        assert near.creator_name == creator.username


def test_limit_keeps_the_nearest(any_session: Session) -> None:
    creator = UserFactory()
    for i in range(10):
        OrderFactory(creator=creator, latitude=10.0 + i * 0.001, longitude=20.0)
    result = find_pending_near(any_session, 10.0, 20.0, 5_000, limit=3)
    assert [round(n.order.latitude, 3) for n in result] == [10.0, 10.001, 10.002]


def test_empty_table_returns_nothing(any_session: Session) -> None:
    assert find_pending_near(any_session, 0.0, 0.0, 1000, limit=10) == []
    assert any_session.scalar(select(func.count(Order.id))) == 0


@pytest.mark.parametrize("lat", [-89.9, -60.0, 0.0, 45.0, 89.9])
@pytest.mark.parametrize("lon", [-180.0, -179.99, 0.0, 179.99, 180.0])
def test_bounding_box_contains_the_whole_cap(lat: float, lon: float) -> None:
    rng = random.Random(f"{lat},{lon}")
    radius = 10_000.0
    box = bounding_box(lat, lon, radius)
    for _ in range(500):
        plat = max(-90.0, min(90.0, lat + rng.uniform(-0.2, 0.2)))
        plon = _wrap(lon + rng.uniform(-5, 5))
        if great_circle_m(lat, lon, plat, plon) <= radius:
            assert box.min_lat <= plat <= box.max_lat
            if box.lon_ranges is not None:
                assert any(lo <= plon <= hi for lo, hi in box.lon_ranges), (plat, plon, box)


def test_requirements_come_back_exactly(any_session: Session) -> None:
    """Whatever JSON a client stored, including integers beyond 64 bits (the fast JSON parser
    on the PostgreSQL path refuses those and falls back to the standard library)."""
    creator = UserFactory()
    requirements = {"camera": "4k", "big": 2**70, "ratio": 0.1, "nested": {"list": [1, "ü"]}}
    OrderFactory(creator=creator, latitude=1.0, longitude=1.0, requirements=requirements)
    OrderFactory(creator=creator, latitude=1.0001, longitude=1.0, requirements={})
    found = find_pending_near(any_session, 1.0, 1.0, 1_000, limit=5)
    assert [n.order.requirements for n in found] == [requirements, {}]
