"""Operating-area queries: is a point inside an area where TapLive operates?"""

from __future__ import annotations

from functools import cache
from typing import Any

from geoalchemy2 import Geography
from sqlalchemy import Float, Select, bindparam, cast, exists, func, literal_column, not_, select
from sqlalchemy.orm import Session

from core.geo import point_in_ring
from db.models import OperatingArea


def list_active(session: Session) -> list[OperatingArea]:
    return list(session.scalars(select(OperatingArea).where(OperatingArea.active.is_(True))))


@cache
def _postgis_is_served() -> Select[Any]:
    """One statement, built once (only the point changes): no active area at all, or an active
    area that covers the point."""
    point = cast(func.ST_SetSRID(func.ST_MakePoint(bindparam("lon", type_=Float),
                                                   bindparam("lat", type_=Float)), 4326),
                 Geography(srid=4326))
    active = OperatingArea.active.is_(True)
    return select(not_(exists().where(active)) | exists().where(
        active, func.ST_Covers(literal_column("operating_areas.area"), point)))


def point_is_served(session: Session, latitude: float, longitude: float) -> bool:
    """True when no area is configured (operate everywhere) or an active area covers the point.

    PostgreSQL: ``ST_Covers`` on the generated geography column (GiST-indexed), in the same
    statement as the "any area at all?" check (this runs on every order create). SQLite: the
    GeoJSON ring checked in Python (a handful of areas; standalone mode only).
    """
    if session.get_bind().dialect.name == "postgresql":
        return bool(session.connection().execute(
            _postgis_is_served(), {"lat": latitude, "lon": longitude}).scalar_one())
    areas = list_active(session)
    return not areas or any(_covers(area.geojson, latitude, longitude) for area in areas)


def _covers(geojson: dict[str, Any], latitude: float, longitude: float) -> bool:
    rings = geojson.get("coordinates") or []
    return bool(rings) and point_in_ring(longitude, latitude, rings[0]) and not any(
        point_in_ring(longitude, latitude, hole) for hole in rings[1:]
    )
