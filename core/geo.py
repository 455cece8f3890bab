"""Scalar great-circle geometry and the product's geographic input rules.

We measure on a sphere with the mean Earth radius, the same sphere PostGIS uses when called with
``use_spheroid => false`` and the same one the matching engine's KD-tree uses, so "within R metres"
means the same thing in SQL, in the engine and in tests (the spheroid differs by < 0.5 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_M = 6371008.7714


def is_valid_coordinate(latitude: float, longitude: float) -> bool:
    return (
        math.isfinite(latitude)
        and math.isfinite(longitude)
        and -90.0 <= latitude <= 90.0
        and -180.0 <= longitude <= 180.0
    )


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in metres (numerically stable for small and antipodal distances)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class BoundingBox:
    """A lat/lon window that contains every point within a radius of a centre.

    ``lon_ranges`` holds one range, or two when the window crosses the antimeridian; ``None``
    means every longitude (the cap touches a pole or is wider than a hemisphere).
    """

    min_lat: float
    max_lat: float
    lon_ranges: tuple[tuple[float, float], ...] | None


def bounding_box(latitude: float, longitude: float, radius_m: float) -> BoundingBox:
    """Exact bounding box of a spherical cap, widened by a hair so rounding never drops a point."""
    angular = radius_m / EARTH_RADIUS_M
    pad = 1e-9  # radians; ~6 mm, far below any radius we accept
    dlat = math.degrees(angular + pad)
    min_lat, max_lat = latitude - dlat, latitude + dlat
    if min_lat <= -90.0 or max_lat >= 90.0 or angular >= math.pi / 2:
        return BoundingBox(max(min_lat, -90.0), min(max_lat, 90.0), None)
    # Largest longitude offset reached by the cap (tangent meridians).
    ratio = math.sin(angular + pad) / math.cos(math.radians(latitude))
    if ratio >= 1.0:
        return BoundingBox(min_lat, max_lat, None)
    dlon = math.degrees(math.asin(ratio))
    west, east = longitude - dlon, longitude + dlon
    if west < -180.0:
        return BoundingBox(min_lat, max_lat, ((west + 360.0, 180.0), (-180.0, east)))
    if east > 180.0:
        return BoundingBox(min_lat, max_lat, ((west, 180.0), (-180.0, east - 360.0)))
    return BoundingBox(min_lat, max_lat, ((west, east),))


def point_in_ring(x: float, y: float, ring: list[list[float]]) -> bool:
    """Even-odd ray casting on a GeoJSON ring of [lon, lat] pairs (planar; fine for the city-
    sized operating areas it serves in standalone mode; PostGIS does it properly elsewhere)."""
    inside = False
    n = len(ring)
    for i in range(n):
        x1, y1 = ring[i][0], ring[i][1]
        x2, y2 = ring[(i + 1) % n][0], ring[(i + 1) % n][1]
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside
