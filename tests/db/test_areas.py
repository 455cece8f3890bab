"""Operating areas decide the same way on PostGIS (ST_Covers) and SQLite (ring check)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from db.queries.areas import point_is_served
from domain import areas

RING = [[-74.03, 40.68], [-73.90, 40.68], [-73.90, 40.88], [-74.03, 40.88], [-74.03, 40.68]]
HOLE = [[-73.99, 40.75], [-73.95, 40.75], [-73.95, 40.79], [-73.99, 40.79], [-73.99, 40.75]]


@pytest.mark.parametrize(("lat", "lon", "served"), [
    (40.71, -74.0, True),     # inside
    (40.77, -73.97, False),   # in the hole (a park)
    (48.85, 2.35, False),     # Paris
])
def test_point_in_area(any_session: Session, lat: float, lon: float, served: bool) -> None:
    assert point_is_served(any_session, lat, lon)  # no areas: everywhere
    areas.add_area(any_session, "NYC", {"type": "Polygon", "coordinates": [RING, HOLE]})
    assert point_is_served(any_session, lat, lon) is served
    areas.set_active(any_session, "NYC", False)
    assert point_is_served(any_session, lat, lon)  # disabled again: everywhere
