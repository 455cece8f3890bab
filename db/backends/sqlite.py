"""SQLite: standalone mode (``make run``: one machine, a few users; see ``db.backends.Backend``).

No PostGIS: geography is an indexed latitude/longitude bounding box plus the exact great-circle
distance (``taplive_distance_m``, registered on every connection by ``db.session``), and the
operating areas' GeoJSON rings are checked in Python.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    false,
    func,
    insert,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.enums import OrderStatus
from core.geo import bounding_box, point_in_ring
from db.backends import CreatedOrder
from db.models import OrderEvent, OutboxMessage
from db.queries.areas import list_active
from db.queries.orders import (
    ORDERS,
    PUBLIC_COLUMNS,
    USERS,
    NearbyAfter,
    NearbyOrder,
)

if TYPE_CHECKING:
    from db.models import Base
    from db.session import Database


def _covers(geojson: dict[str, Any], latitude: float, longitude: float) -> bool:
    rings = geojson.get("coordinates") or []
    return bool(rings) and point_in_ring(longitude, latitude, rings[0]) and not any(
        point_in_ring(longitude, latitude, hole) for hole in rings[1:]
    )


def _bbox_filter(latitude: float, longitude: float, radius_m: float) -> ColumnElement[bool]:
    box = bounding_box(latitude, longitude, radius_m)
    lat_ok = ORDERS.c.latitude.between(box.min_lat, box.max_lat)
    if box.lon_ranges is None:
        return lat_ok
    lon_ok = or_(false(), *(ORDERS.c.longitude.between(lo, hi) for lo, hi in box.lon_ranges))
    return and_(lat_ok, lon_ok)


def _nearby(latitude: float, longitude: float, radius_m: float,
            after: NearbyAfter | None = None) -> Select[Any]:
    distance = func.taplive_distance_m(
        ORDERS.c.latitude, ORDERS.c.longitude, literal(latitude), literal(longitude))
    stmt = (
        select(*PUBLIC_COLUMNS, distance.label("distance_m"),
               USERS.c.username.label("creator_name"))
        .join(USERS, USERS.c.id == ORDERS.c.creator_id)
        .where(ORDERS.c.status == OrderStatus.PENDING,
               _bbox_filter(latitude, longitude, radius_m), distance <= radius_m)
    )
    if after is not None:
        stmt = stmt.where(or_(distance > after[0],
                              and_(distance == after[0], ORDERS.c.id > after[1])))
    return stmt.order_by(distance, ORDERS.c.id).limit(bindparam("limit", type_=Integer))


class SQLiteBackend:
    # SQLite's transactions are BEGIN IMMEDIATE (db.session._sqlite_begin): no autocommit
    # reader, every unit of work is a transaction.
    autocommit_reads = False

    def one_of(self, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
        # No arrays in SQLite; an expanding IN (standalone sizes are small).
        return cast(ColumnElement[bool], column.in_(list(values)))

    def point_is_served(self, session: Session, latitude: float, longitude: float) -> bool:
        areas = list_active(session)  # a handful at most
        return not areas or any(_covers(area.geojson, latitude, longitude) for area in areas)

    def insert_served_order(self, session: Session, order: dict[str, Any],
                            history: dict[str, Any], message: dict[str, Any]
                            ) -> CreatedOrder | None:
        # The same row as PostgreSQL's RETURNING, so the caller has one type on both.
        if not self.point_is_served(session, order["latitude"], order["longitude"]):
            return None
        connection = session.connection()
        row = connection.execute(insert(ORDERS).returning(*ORDERS.c), order).one()
        connection.execute(insert(cast(Table, OrderEvent.__table__)), history)
        outbox = cast(Table, OutboxMessage.__table__)
        outbox_id = connection.execute(insert(outbox).returning(outbox.c.id),
                                       message).scalar_one()
        return CreatedOrder(row, outbox_id)

    def find_pending_near(self, session: Session, latitude: float, longitude: float,
                          radius_m: float, limit: int, after: NearbyAfter | None = None
                          ) -> list[NearbyOrder]:
        rows = session.connection().execute(_nearby(latitude, longitude, radius_m, after),
                                            {"limit": limit})
        return [NearbyOrder(order=row, distance_m=float(row.distance_m),
                            creator_name=row.creator_name) for row in rows]

    def read_pending_near(self, database: Database, latitude: float, longitude: float,
                          radius_m: float, limit: int, after: NearbyAfter | None = None
                          ) -> list[NearbyOrder]:
        # The request's own session: standalone mode has no hot path worth a second one.
        return self.find_pending_near(database.session(), latitude, longitude, radius_m, limit,
                                      after)

    def insert_ignoring_duplicates(self, session: Session, model: type[Base],
                                   rows: Sequence[dict[str, Any]],
                                   conflict_columns: Sequence[str]) -> list[Any]:
        # Parameters passed apart from the statement: it is compiled once and cached, and
        # SQLAlchemy batches the rows into one multi-row INSERT ("insertmanyvalues").
        # RETURNING: SQLite has it since 3.35.
        key = next(iter(model.__table__.primary_key))
        stmt = sqlite.insert(model).on_conflict_do_nothing(
            index_elements=list(conflict_columns)).returning(key)
        return list(session.scalars(stmt, list(rows)))

    def median_seconds_between(self, session: Session, start: InstrumentedAttribute[Any],
                               end: InstrumentedAttribute[Any],
                               conditions: Sequence[ColumnElement[bool]]) -> float | None:
        # No percentile aggregate in SQLite: the pairs are fetched and the median taken in
        # Python, fine at standalone sizes.
        pairs = session.execute(select(start, end).where(*conditions))
        durations = [(finished - started).total_seconds() for started, finished in pairs
                     if finished is not None]
        return statistics.median(durations) if durations else None
