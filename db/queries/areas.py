"""Operating-area queries: is a point inside an area where TapLive operates?"""

from __future__ import annotations

from typing import Any

from sqlalchemy import cast, func, literal, literal_column, select
from sqlalchemy.orm import Session

from db.lifecycle_models import OperatingArea
from domain.geo import point_in_ring


def list_active(session: Session) -> list[OperatingArea]:
    return list(session.scalars(select(OperatingArea).where(OperatingArea.active.is_(True))))


def point_is_served(session: Session, latitude: float, longitude: float) -> bool:
    """True when no area is configured (operate everywhere) or an active area covers the point.

    PostgreSQL: ``ST_Covers`` on the generated geography column (GiST-indexed). SQLite: the
    GeoJSON ring checked in Python (a handful of areas; standalone mode only).
    """
    if session.scalar(select(func.count(OperatingArea.id)).where(OperatingArea.active)) == 0:
        return True  # no areas configured: TapLive operates everywhere
    if session.get_bind().dialect.name == "postgresql":
        from geoalchemy2 import Geography

        point = cast(func.ST_SetSRID(func.ST_MakePoint(literal(longitude), literal(latitude)),
                                     4326), Geography(srid=4326))
        covered = select(OperatingArea.id).where(
            OperatingArea.active.is_(True),
            func.ST_Covers(literal_column("operating_areas.area"), point),
        ).limit(1)
        return session.scalar(covered) is not None
    return any(_covers(area.geojson, latitude, longitude) for area in list_active(session))


def _covers(geojson: dict[str, Any], latitude: float, longitude: float) -> bool:
    rings = geojson.get("coordinates") or []
    return bool(rings) and point_in_ring(longitude, latitude, rings[0]) and not any(
        point_in_ring(longitude, latitude, hole) for hole in rings[1:]
    )
