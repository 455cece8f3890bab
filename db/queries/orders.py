"""Order queries, including the geographic ones.

PostGIS on PostgreSQL; an indexed bounding box plus an exact great-circle filter on SQLite.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from geoalchemy2 import Geography
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    cast,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from db.models import Order, User
from domain.enums import OrderStatus
from domain.geo import bounding_box

# PostgreSQL-only generated column (see db.models.LOCATION_POINT_SQL), referenced by name.
LOCATION_POINT: ColumnElement[object] = literal_column("live_stream_orders.location_point")


@dataclass(frozen=True)
class NearbyOrder:
    order: Order
    distance_m: float
    creator_name: str


def find_by_id(session: Session, order_id: uuid.UUID) -> Order | None:
    return session.get(Order, order_id)


def _postgis_point(latitude: float, longitude: float) -> ColumnElement[object]:
    return cast(
        func.ST_SetSRID(func.ST_MakePoint(literal(longitude), literal(latitude)), 4326),
        Geography(srid=4326),
    )


def _sqlite_bbox_filter(latitude: float, longitude: float, radius_m: float) -> ColumnElement[bool]:
    box = bounding_box(latitude, longitude, radius_m)
    lat_ok = Order.latitude.between(box.min_lat, box.max_lat)
    if box.lon_ranges is None:
        return lat_ok
    lon_ok = or_(false(), *(Order.longitude.between(lo, hi) for lo, hi in box.lon_ranges))
    return and_(lat_ok, lon_ok)


def find_pending_near(
    session: Session, latitude: float, longitude: float, radius_m: float, limit: int
) -> list[NearbyOrder]:
    """Pending orders within ``radius_m`` great-circle metres of a point, nearest first.

    PostgreSQL runs the spec's optimised query: ``ST_DWithin`` (GiST-indexed) + ``ST_Distance``
    on the sphere. SQLite narrows with the indexed lat/lon bounding box, then applies the exact
    haversine filter and ordering (``taplive_distance_m`` is registered on every connection).
    """
    stmt: Select[Order, float, str]
    if session.get_bind().dialect.name == "postgresql":
        point = _postgis_point(latitude, longitude)
        distance = func.ST_Distance(LOCATION_POINT, point, False)
        stmt = select(Order, distance.label("distance_m"), User.username).where(
            Order.status == OrderStatus.PENDING,
            func.ST_DWithin(LOCATION_POINT, point, radius_m, False),
        )
    else:
        distance = func.taplive_distance_m(
            Order.latitude, Order.longitude, literal(latitude), literal(longitude)
        )
        stmt = select(Order, distance.label("distance_m"), User.username).where(
            Order.status == OrderStatus.PENDING,
            _sqlite_bbox_filter(latitude, longitude, radius_m),
            distance <= radius_m,
        )
    stmt = stmt.join(User, User.id == Order.creator_id).order_by(distance, Order.id).limit(limit)
    return [
        NearbyOrder(order=order, distance_m=float(distance_m), creator_name=creator_name)
        for order, distance_m, creator_name in session.execute(stmt).tuples()
    ]
