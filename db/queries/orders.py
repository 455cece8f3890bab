"""Order queries, including the geographic ones.

PostGIS on PostgreSQL; an indexed bounding box plus an exact great-circle filter on SQLite.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

import orjson
import psycopg
from geoalchemy2 import Geography
from psycopg.rows import namedtuple_row
from psycopg.types.json import set_json_loads
from sqlalchemy import (
    ColumnElement,
    Enum,
    Float,
    Integer,
    Row,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from core.geo import bounding_box
from db.models import Order, User

# PostgreSQL-only generated column (see db.models.LOCATION_POINT_SQL), referenced by name.
LOCATION_POINT: ColumnElement[object] = literal_column("live_stream_orders.location_point")


@dataclass(frozen=True)
class NearbyOrder:
    #: A row of ``live_stream_orders`` with its public columns (``PUBLIC_COLUMNS``), under the
    #: same names as ``Order``'s attributes, so serializers read it exactly like an ``Order``
    #: (on PostgreSQL the status is its text value, which equals the ``OrderStatus``).
    order: Any
    distance_m: float
    creator_name: str


def find_by_id(session: Session, order_id: uuid.UUID, *, for_update: bool = False) -> Order | None:
    """One order; ``for_update`` takes the row lock (PostgreSQL) so concurrent transitions of
    the same order queue up instead of racing (SQLite serialises writers anyway, and the
    order's version column catches anything that slips through)."""
    stmt = select(Order).where(Order.id == order_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).one_or_none()


@dataclass(frozen=True)
class OrderFilter:
    """Filters of ``GET /orders``: the caller's orders as creator and/or assigned provider."""

    user_id: uuid.UUID
    as_creator: bool = True
    as_provider: bool = True
    status: OrderStatus | None = None
    tag: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def _has_tag(session: Session, tag: str) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return Order.tags.op("@>")(sql_cast(array([tag]), ARRAY(Text())))  # GIN-indexed
    each = func.json_each(Order.tags).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == tag))


def select_for_user(session: Session, flt: OrderFilter) -> Select[Order]:
    """Unordered, unpaged selection of the caller's orders (pagination adds both)."""
    roles = []
    if flt.as_creator:
        roles.append(Order.creator_id == flt.user_id)
    if flt.as_provider:
        roles.append(Order.provider_id == flt.user_id)
    stmt = select(Order).where(or_(false(), *roles))
    if flt.status is not None:
        stmt = stmt.where(Order.status == flt.status)
    if flt.tag:
        stmt = stmt.where(_has_tag(session, flt.tag))
    if flt.created_from:
        stmt = stmt.where(Order.created_at >= flt.created_from)
    if flt.created_to:
        stmt = stmt.where(Order.created_at < flt.created_to)
    return stmt


def _postgis_point(latitude: Any, longitude: Any) -> ColumnElement[object]:
    return sql_cast(
        func.ST_SetSRID(func.ST_MakePoint(longitude, latitude), 4326),
        Geography(srid=4326),
    )


def _sqlite_bbox_filter(latitude: float, longitude: float, radius_m: float) -> ColumnElement[bool]:
    box = bounding_box(latitude, longitude, radius_m)
    lat_ok = Order.latitude.between(box.min_lat, box.max_lat)
    if box.lon_ranges is None:
        return lat_ok
    lon_ok = or_(false(), *(Order.longitude.between(lo, hi) for lo, hi in box.lon_ranges))
    return and_(lat_ok, lon_ok)


_ORDERS = cast(Table, Order.__table__)
_USERS = cast(Table, User.__table__)
#: What the API shows of an order (every column but payment and dispute internals): the
#: nearby search reads only these, as every column costs on each of its rows.
PUBLIC_COLUMNS = tuple(c for c in _ORDERS.c if c.name not in {
    "payment_intent_id", "version", "disputed_at", "dispute_reason"})


@cache
def _postgis_nearby_sql() -> str:
    """The nearby query as SQL, for psycopg directly (see ``find_pending_near``). Built once
    from the table's metadata; only the four parameters change between calls."""
    point = "ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography"
    columns = ", ".join(f"o.{column.name}" for column in PUBLIC_COLUMNS)
    return (
        f"SELECT {columns}, ST_Distance(o.location_point, {point}, false) AS distance_m, "
        f"u.username AS creator_name "
        f"FROM {_ORDERS.name} AS o JOIN {_USERS.name} AS u ON u.id = o.creator_id "
        f"WHERE o.status = '{OrderStatus.PENDING.value}' "
        f"AND ST_DWithin(o.location_point, {point}, %(radius)s, false) "
        # No tie-breaker: it would defeat the KNN index scan.
        f"ORDER BY o.location_point <-> {point} LIMIT %(limit)s"
    )


def _sqlite_nearby(latitude: float, longitude: float, radius_m: float) -> Select[Any]:
    distance = func.taplive_distance_m(
        _ORDERS.c.latitude, _ORDERS.c.longitude, literal(latitude), literal(longitude))
    return (
        select(*PUBLIC_COLUMNS, distance.label("distance_m"),
               _USERS.c.username.label("creator_name"))
        .join(_USERS, _USERS.c.id == _ORDERS.c.creator_id)
        .where(_ORDERS.c.status == OrderStatus.PENDING,
               _sqlite_bbox_filter(latitude, longitude, radius_m), distance <= radius_m)
        .order_by(distance, _ORDERS.c.id)
        .limit(bindparam("limit", type_=Integer))
    )


def find_pending_near(
    session: Session, latitude: float, longitude: float, radius_m: float, limit: int
) -> list[NearbyOrder]:
    """Pending orders within ``radius_m`` great-circle metres of a point, nearest first.

    PostgreSQL runs the spec's optimised query, ``ST_DWithin`` (GiST-indexed) + ``ST_Distance``
    on the sphere, but orders by the KNN operator ``<->`` (sphere distance for geography): the
    GiST index then yields rows nearest first and stops at ``limit``, instead of computing and
    sorting the distance of every order in the radius (3x faster at 270 orders in 2 km, and the
    gap grows with density; see docs/benchmarks.md). SQLite narrows with the indexed lat/lon
    bounding box, then applies the exact haversine filter and ordering
    (``taplive_distance_m`` is registered on every connection).

    Rows, not ORM entities: this is the hottest read of the API, and entity hydration (identity
    map, instance state) was a fifth of its time for objects that are only serialised.
    """
    if session.get_bind().dialect.name == "postgresql":
        return postgis_pending_near(session.connection().connection.dbapi_connection,
                                    latitude, longitude, radius_m, limit)
    rows = session.connection().execute(
        _sqlite_nearby(latitude, longitude, radius_m), {"limit": limit})
    return [NearbyOrder(order=row, distance_m=float(row.distance_m),
                        creator_name=row.creator_name) for row in rows]


def _json_loads(data: str | bytes) -> Any:
    # orjson parses each row's jsonb several times faster than the standard library and to the
    # same values; integers beyond 64 bits (which it refuses) take the standard library.
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def postgis_pending_near(connection: Any, latitude: float, longitude: float,
                         radius_m: float, limit: int) -> list[NearbyOrder]:
    """``find_pending_near`` on a psycopg connection (``Database.dbapi_read``, or a session's).

    On psycopg's own cursor: the statement is fixed and its values are plain, so SQLAlchemy's
    execution and result layers only cost time here (~40 % of this function's). Rows are named
    tuples with the columns' names; psycopg returns them already typed (uuid, aware UTC
    datetimes, dict, list), the status as its text value."""
    dbapi = cast("psycopg.Connection[Any]", connection)
    with dbapi.cursor(row_factory=namedtuple_row) as cursor:
        set_json_loads(_json_loads, cursor)
        cursor.execute(_postgis_nearby_sql(), {"lat": latitude, "lon": longitude,
                                               "radius": float(radius_m), "limit": limit})
        rows: list[Any] = cursor.fetchall()
    return [NearbyOrder(order=row, distance_m=float(row.distance_m),
                        creator_name=row.creator_name) for row in rows]


def _typed(table: Table, prefix: str, names: list[str]) -> list[ColumnElement[Any]]:
    # In INSERT ... SELECT, PostgreSQL types each parameter by itself, not by the target
    # column. SQLAlchemy's psycopg dialect already renders a cast on most parameters
    # ("%(x)s::UUID"); an enum needs an explicit one. Nothing more: psycopg caches the
    # conversion of statements only up to 4 kB, and this one is close.
    params: list[ColumnElement[Any]] = []
    for name in names:
        column_type = table.c[name].type
        param = bindparam(f"{prefix}{name}", type_=column_type)
        params.append(sql_cast(param, column_type) if isinstance(column_type, Enum) else param)
    return params


@cache
def _postgis_create(order_names: tuple[str, ...], history_names: tuple[str, ...],
                    outbox_names: tuple[str, ...]) -> Select[Any]:
    """One statement for a whole order create: the operating-area check, the order row, its
    history row and its outbox row (data-modifying CTEs). The history and outbox rows select
    FROM the inserted order, so an order refused by the area check writes nothing at all."""
    from db.models import OperatingArea, OrderEvent, OutboxMessage

    areas, history, outbox = (cast(Table, model.__table__)
                              for model in (OperatingArea, OrderEvent, OutboxMessage))
    point = _postgis_point(bindparam("o_latitude", type_=Float),
                           bindparam("o_longitude", type_=Float))
    active = areas.c.active.is_(True)
    served = or_(~exists().where(active),
                 exists().where(active, func.ST_Covers(literal_column("operating_areas.area"),
                                                       point)))
    new_order = (
        _ORDERS.insert()
        .from_select(list(order_names), select(*_typed(_ORDERS, "o_", list(order_names)))
                     .where(served))
        .returning(*_ORDERS.c)
        .cte("new_order")
    )
    new_history = history.insert().from_select(
        list(history_names),
        select(*_typed(history, "h_", list(history_names))).select_from(new_order),
    ).cte("new_history")
    new_outbox = outbox.insert().from_select(
        list(outbox_names),
        select(*_typed(outbox, "x_", list(outbox_names))).select_from(new_order),
    ).cte("new_outbox")
    return select(new_order).add_cte(new_history, new_outbox)


def insert_served_order(session: Session, order: dict[str, Any], history: dict[str, Any],
                        message: dict[str, Any]) -> Row[Any] | None:
    """PostgreSQL: insert a new order with its history and outbox rows in one round trip, if
    its location is served (see ``db.queries.areas.point_is_served``). Returns the order's row
    (as ``find_pending_near`` does), or None when no operating area covers it."""
    stmt = _postgis_create(tuple(order), tuple(history), tuple(message))
    params = ({f"o_{k}": v for k, v in order.items()} | {f"h_{k}": v for k, v in history.items()}
              | {f"x_{k}": v for k, v in message.items()})
    return session.connection().execute(stmt, params).one_or_none()


def find_expired_pending_ids(session: Session, now: datetime, unscheduled_ttl: timedelta,
                             grace: timedelta, limit: int) -> list[uuid.UUID]:
    """Pending orders nobody took in time: scheduled ones whose time (plus grace) has passed,
    unscheduled ones older than the TTL."""
    stmt = (
        select(Order.id)
        .where(
            Order.status == OrderStatus.PENDING,
            or_(
                and_(Order.scheduled_for.is_not(None), Order.scheduled_for < now - grace),
                and_(Order.scheduled_for.is_(None), Order.created_at < now - unscheduled_ttl),
            ),
        )
        .order_by(Order.created_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))
