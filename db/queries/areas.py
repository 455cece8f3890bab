"""Operating-area queries: is a point inside an area where TapLive operates?"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.backends import backend_of
from db.models import OperatingArea


def list_active(session: Session) -> list[OperatingArea]:
    return list(session.scalars(select(OperatingArea).where(OperatingArea.active.is_(True))))


def point_is_served(session: Session, latitude: float, longitude: float) -> bool:
    """True when no area is configured (operate everywhere) or an active area covers the point.

    PostgreSQL: ``ST_Covers`` on the generated geography column (GiST-indexed), in the same
    statement as the "any area at all?" check (this runs on every order create). SQLite: the
    GeoJSON ring checked in Python (a handful of areas; standalone mode only).
    """
    return backend_of(session).point_is_served(session, latitude, longitude)
