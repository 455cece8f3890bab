"""PostgreSQL/PostGIS: the production backend (see ``db.backends.Backend``).

The API's two hottest paths are here: the order create (one statement for the area check and
three rows) and the nearby search (psycopg's own cursor on a pooled connection, outside any ORM
session). Both were measured; see docs/benchmarks.md before changing them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import orjson
import psycopg
from geoalchemy2 import Geography
from psycopg.rows import namedtuple_row
from psycopg.types.json import set_json_loads
from sqlalchemy import (
    ColumnElement,
    Enum,
    Float,
    Select,
    Table,
    any_,
    bindparam,
    exists,
    func,
    literal_column,
    not_,
    or_,
    select,
    text,
    true,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import TextClause

from core.enums import OrderStatus
from db.backends import CreatedOrder
from db.models import OperatingArea, OrderEvent, OutboxMessage
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

#: The create statement's extra column: the id of the order's outbox row.
OUTBOX_ID = "outbox_id"
_AREAS, _HISTORY, _OUTBOX = (cast(Table, model.__table__)
                             for model in (OperatingArea, OrderEvent, OutboxMessage))


def _point(latitude: Any, longitude: Any) -> ColumnElement[object]:
    return sql_cast(
        func.ST_SetSRID(func.ST_MakePoint(longitude, latitude), 4326),
        Geography(srid=4326),
    )


def _served(point: ColumnElement[object]) -> ColumnElement[bool]:
    """No active area at all, or an active area that covers ``point`` (``ST_Covers`` on the
    generated geography column, GiST-indexed)."""
    active = _AREAS.c.active.is_(True)
    return or_(not_(exists().where(active)), exists().where(
        active, func.ST_Covers(literal_column("operating_areas.area"), point)))


@cache
def _is_served() -> Select[Any]:
    """One statement, built once (only the point changes)."""
    return select(_served(_point(bindparam("lat", type_=Float),
                                 bindparam("lon", type_=Float))))


_POINT = "ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography"
_KNN = f"(o.location_point <-> {_POINT})"


def _in_radius(alias: str) -> str:
    return (f"{alias}.status = '{OrderStatus.PENDING.value}' "
            f"AND ST_DWithin({alias}.location_point, {_POINT}, %(radius)s, false)")


@cache
def _nearby_sql(*, after: bool = False, ties: bool = False) -> str:
    """The nearby query as SQL, for psycopg directly (see ``pending_near_on``). Built once
    per variant from the table's metadata; only the parameters change between calls.
    ``after``: only rows after the previous page's (KNN distance, id); ``ties``: only the
    rows at exactly the KNN distance ``%(tie)s`` (see ``pending_near_on``)."""
    columns = ", ".join(f"o.{column.name}" for column in PUBLIC_COLUMNS)
    sql = (
        f"SELECT {columns}, ST_Distance(o.location_point, {_POINT}, false) AS distance_m, "
        f"{_KNN} AS sort_m, u.username AS creator_name "
        f"FROM {ORDERS.name} AS o JOIN {USERS.name} AS u ON u.id = o.creator_id "
        f"WHERE {_in_radius('o')} "
    )
    if after:
        sql += (f"AND ({_KNN} > %(after_m)s "
                f"OR ({_KNN} = %(after_m)s AND o.id > %(after_id)s)) ")
    if ties:
        return sql + f"AND {_KNN} = %(tie)s"
    # No tie-breaker in ORDER BY: it would defeat the KNN index scan (the plan becomes a sort
    # of every order in the radius); ties are put in id order in Python instead.
    return sql + f"ORDER BY {_KNN} LIMIT %(limit)s"




def json_loads(data: str | bytes) -> Any:
    # orjson parses each row's jsonb several times faster than the standard library and to the
    # same values; integers beyond 64 bits (which it refuses) take the standard library.
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def pending_near_on(connection: Any, latitude: float, longitude: float,
                    radius_m: float, limit: int, after: NearbyAfter | None = None
                    ) -> list[NearbyOrder]:
    """The nearby search on a psycopg connection (``Database.dbapi_read``, or a session's).

    ``ST_DWithin`` (GiST-indexed) + ``ST_Distance`` on the sphere, ordered by the KNN operator
    ``<->`` (sphere distance for geography): the GiST index then yields rows nearest first and
    stops at ``limit``, instead of computing and sorting the distance of every order in the
    radius (3x faster at 270 orders in 2 km, and the gap grows with density).

    On psycopg's own cursor: the statement is fixed and its values are plain, so SQLAlchemy's
    execution and result layers only cost time here (~40 % of this function's). Rows are named
    tuples with the columns' names; psycopg returns them already typed (uuid, aware UTC
    datetimes, dict, list), the status as its text value.

    Pages are keyed by (KNN distance, id). The KNN scan returns rows in distance order but
    ties (orders at one spot) in no particular order, so one row more than ``limit`` is read:
    when it ties with the ``limit``-th, the whole tie group is read too (a second statement,
    only then: equal distances to the last digit mean the same spot), and the rows are put in
    (distance, id) order before cutting at ``limit``. Every page then starts exactly where
    the one before ended."""
    dbapi = cast("psycopg.Connection[Any]", connection)
    params: dict[str, Any] = {"lat": latitude, "lon": longitude, "radius": float(radius_m),
                              "limit": limit + 1}
    if after is not None:
        params.update(after_m=after[0], after_id=after[1])
    with dbapi.cursor(row_factory=namedtuple_row) as cursor:
        set_json_loads(json_loads, cursor)
        cursor.execute(_nearby_sql(after=after is not None), params)
        rows: list[Any] = cursor.fetchall()
        if len(rows) > limit and rows[limit].sort_m == rows[limit - 1].sort_m:
            tie = rows[limit].sort_m
            cursor.execute(_nearby_sql(after=after is not None, ties=True), params | {"tie": tie})
            rows = [row for row in rows if row.sort_m != tie] + cursor.fetchall()
    rows.sort(key=lambda row: (row.sort_m, row.id))
    return [NearbyOrder(order=row, distance_m=float(row.distance_m),
                        creator_name=row.creator_name, sort_m=float(row.sort_m))
            for row in rows[:limit]]


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


def _primary_key(table: Table) -> str:
    [key] = table.primary_key.columns
    return str(key.name)


@cache
def _bulk_insert_sql(table: str, names: tuple[str, ...], conflict: tuple[str, ...],
                     key: str) -> TextClause:
    """``INSERT ... SELECT`` from a JSON array of rows: one text per (table, columns)."""
    columns = ", ".join(f'"{name}"' for name in names)
    return text(
        f'INSERT INTO "{table}" ({columns}) '
        f'SELECT {columns} FROM jsonb_populate_recordset(NULL::"{table}", '
        f"CAST(:rows AS jsonb)) "
        f'ON CONFLICT ({", ".join(conflict)}) DO NOTHING RETURNING "{key}"')


def _complete(table: Table, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with the Python-side defaults of the columns they leave out (what the ORM's
    own insert would fill in: ``id``, ``created_at``...), checked to share one set of
    columns (the statement names them)."""
    names = set(rows[0])
    if any(set(row) != names for row in rows):
        raise ValueError(f"rows for {table.name} must all have the same columns")
    defaults = [c for c in table.columns
                if c.name not in names and c.default is not None
                and (c.default.is_scalar or c.default.is_callable)]
    if not defaults:
        return list(rows)
    return [row | {c.name: (c.default.arg(None) if c.default.is_callable  # type: ignore[union-attr]
                            else c.default.arg)  # type: ignore[union-attr]
                   for c in defaults} for row in rows]


def _json_default(value: Any) -> Any:
    # orjson writes UUIDs, datetimes (ISO 8601 with offset) and str enums itself; PostgreSQL
    # reads them back into uuid and timestamptz columns exactly. Subclasses of datetime
    # (freezegun's, in tests) come here.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


@cache
def _create(order_names: tuple[str, ...], history_names: tuple[str, ...],
            outbox_names: tuple[str, ...]) -> Select[Any]:
    """One statement for a whole order create: the operating-area check, the order row, its
    history row and its outbox row (data-modifying CTEs). The history and outbox rows select
    FROM the inserted order, so an order refused by the area check writes nothing at all."""
    point = _point(bindparam("o_latitude", type_=Float), bindparam("o_longitude", type_=Float))
    new_order = (
        ORDERS.insert()
        .from_select(list(order_names), select(*_typed(ORDERS, "o_", list(order_names)))
                     .where(_served(point)))
        .returning(*ORDERS.c)
        .cte("new_order")
    )
    new_history = _HISTORY.insert().from_select(
        list(history_names),
        select(*_typed(_HISTORY, "h_", list(history_names))).select_from(new_order),
    ).cte("new_history")
    new_outbox = _OUTBOX.insert().from_select(
        list(outbox_names),
        select(*_typed(_OUTBOX, "x_", list(outbox_names))).select_from(new_order),
    ).returning(_OUTBOX.c.id).cte("new_outbox")
    # One row each (or none): the order's columns, then the outbox row's id.
    return (select(new_order, new_outbox.c.id.label(OUTBOX_ID))
            .select_from(new_order.join(new_outbox, true()))
            .add_cte(new_history))


class PostgresBackend:
    autocommit_reads = True

    def one_of(self, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
        # One array parameter: the same statement text for 1 or 1,500 values, so psycopg
        # converts it once and may prepare it, and PostgreSQL need not parse 1,500
        # placeholders (an expanding IN cost a matching pass tens of ms at 500 invitations).
        values = list(values)
        return cast(ColumnElement[bool], column == any_(
            bindparam(None, values, type_=postgresql.ARRAY(column.type))))

    def point_is_served(self, session: Session, latitude: float, longitude: float) -> bool:
        # The area check and the "any area at all?" check in one statement: it runs on every
        # order create and edit.
        return bool(session.connection().execute(
            _is_served(), {"lat": latitude, "lon": longitude}).scalar_one())

    def insert_served_order(self, session: Session, order: dict[str, Any],
                            history: dict[str, Any], message: dict[str, Any]
                            ) -> CreatedOrder | None:
        # One round trip (the API's busiest write: the ORM's unit of work plus three round
        # trips were most of its time), and the RETURNING row is what the caller serialises.
        # The row also carries the outbox id (as ``outbox_id``): projections read columns by
        # name, so one extra is cheaper than a second statement or a copy of the row.
        stmt = _create(tuple(order), tuple(history), tuple(message))
        params = ({f"o_{k}": v for k, v in order.items()}
                  | {f"h_{k}": v for k, v in history.items()}
                  | {f"x_{k}": v for k, v in message.items()})
        row = session.connection().execute(stmt, params).one_or_none()
        return None if row is None else CreatedOrder(row, getattr(row, OUTBOX_ID))

    def find_pending_near(self, session: Session, latitude: float, longitude: float,
                          radius_m: float, limit: int, after: NearbyAfter | None = None
                          ) -> list[NearbyOrder]:
        return pending_near_on(session.connection().connection.dbapi_connection,
                               latitude, longitude, radius_m, limit, after)

    def read_pending_near(self, database: Database, latitude: float, longitude: float,
                          radius_m: float, limit: int, after: NearbyAfter | None = None
                          ) -> list[NearbyOrder]:
        # Outside any ORM session: a session's transaction bookkeeping, connection wrapper
        # and teardown were a tenth of this request's time.
        with database.dbapi_read() as connection:
            return pending_near_on(connection, latitude, longitude, radius_m, limit, after)

    def insert_ignoring_duplicates(self, session: Session, model: type[Base],
                                   rows: Sequence[dict[str, Any]],
                                   conflict_columns: Sequence[str]) -> list[Any]:
        # The rows travel as one JSON array and PostgreSQL unpacks them
        # (``jsonb_populate_recordset``): the statement's text is the same whatever the
        # number of rows. A multi-row ``INSERT ... VALUES`` (SQLAlchemy's insertmanyvalues)
        # differs with every row count, so psycopg parsed each one anew (a tenth of a second
        # for 500 invitations) and PostgreSQL planned it anew (issue 16).
        table = cast(Table, model.__table__)
        complete = _complete(table, rows)
        names = tuple(complete[0])
        payload = orjson.dumps(complete, default=_json_default)
        result = session.execute(_bulk_insert_sql(table.name, names, tuple(conflict_columns),
                                                  _primary_key(table)),
                                 {"rows": payload.decode()})
        return list(result.scalars())

    def median_seconds_between(self, session: Session, start: InstrumentedAttribute[Any],
                               end: InstrumentedAttribute[Any],
                               conditions: Sequence[ColumnElement[bool]]) -> float | None:
        # In the database: one aggregate, whatever the number of rows.
        seconds = func.extract("epoch", end - start)
        median = func.percentile_cont(0.5).within_group(seconds)
        value = session.execute(select(median).where(*conditions)).scalar_one()
        return None if value is None else float(value)
