"""Operating areas: where TapLive accepts orders. With none active, orders are accepted anywhere."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound, ValidationFailed
from core.geo import is_valid_coordinate
from db.models import OperatingArea


def validate_polygon(geojson: Any) -> dict[str, Any]:
    """A GeoJSON Polygon with closed rings of valid [lon, lat] positions, or 400."""
    def fail(why: str) -> ValidationFailed:
        return ValidationFailed(f"Not a valid GeoJSON Polygon: {why}.", details={"geojson": [why]})

    if not isinstance(geojson, dict) or geojson.get("type") != "Polygon":
        raise fail("type must be Polygon")
    rings = geojson.get("coordinates")
    if not isinstance(rings, list) or not rings:
        raise fail("coordinates must be a list of rings")
    for ring in rings:
        if not isinstance(ring, list) or len(ring) < 4:
            raise fail("each ring needs at least 4 positions")
        for position in ring:
            if (not isinstance(position, list) or len(position) < 2
                    or not all(isinstance(v, int | float) for v in position[:2])
                    or not is_valid_coordinate(float(position[1]), float(position[0]))):
                raise fail("positions are [longitude, latitude] within range")
        if ring[0][:2] != ring[-1][:2]:
            raise fail("rings must be closed (first position = last)")
    return {"type": "Polygon", "coordinates": rings}


def add_area(session: Session, name: str, geojson: Any) -> OperatingArea:
    if session.scalar(select(OperatingArea.id).where(OperatingArea.name == name)) is not None:
        raise Conflict(f"An area named {name!r} exists.", code="AREA_EXISTS")
    area = OperatingArea(name=name, geojson=validate_polygon(geojson), active=True)
    session.add(area)
    session.flush()
    return area


def set_active(session: Session, name: str, active: bool) -> OperatingArea:
    area = session.scalars(select(OperatingArea).where(OperatingArea.name == name)).one_or_none()
    if area is None:
        raise NotFound(f"No area named {name!r}.")
    area.active = active
    session.flush()
    return area


def list_areas(session: Session) -> list[OperatingArea]:
    return list(session.scalars(select(OperatingArea).order_by(OperatingArea.name)))
