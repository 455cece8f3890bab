"""Order queries, including the geographic ones (what differs per database is in
``db.backends``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Select, Table, and_, false, or_, select
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.backends import CreatedOrder, backend_of
from db.backends.constructs import has_tag
from db.models import Order, User
from db.pagination import CursorCodec, Page

if TYPE_CHECKING:
    from db.session import Database


@dataclass(frozen=True)
class NearbyOrder:
    #: A row of ``live_stream_orders`` with its public columns (``PUBLIC_COLUMNS``), under the
    #: same names as ``Order``'s attributes, so serializers read it exactly like an ``Order``
    #: (on PostgreSQL the status is its text value, which equals the ``OrderStatus``).
    order: Any
    distance_m: float
    creator_name: str
    #: The page key (with the order's id): the distance the database orders by. PostGIS's
    #: KNN operator rounds differently from ``ST_Distance`` in the last digits, so the key is
    #: its own value, not ``distance_m``; SQLite orders by ``distance_m`` itself.
    sort_m: float | None = None

    @property
    def key(self) -> tuple[float, uuid.UUID]:
        return (self.distance_m if self.sort_m is None else self.sort_m), self.order.id


#: A nearby page's lower bound: the (key, id) of the last row of the page before.
NearbyAfter = tuple[float, uuid.UUID]


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


def select_for_user(flt: OrderFilter) -> Select[Order]:
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
        stmt = stmt.where(has_tag(Order.tags, flt.tag))  # GIN-indexed on PostgreSQL
    if flt.created_from:
        stmt = stmt.where(Order.created_at >= flt.created_from)
    if flt.created_to:
        stmt = stmt.where(Order.created_at < flt.created_to)
    return stmt


ORDERS = cast(Table, Order.__table__)
USERS = cast(Table, User.__table__)
#: What the API shows of an order (every column but payment and dispute internals): the
#: nearby search reads only these, as every column costs on each of its rows.
PUBLIC_COLUMNS = tuple(c for c in ORDERS.c if c.name not in {
    "payment_intent_id", "version", "disputed_at", "dispute_reason"})


def find_pending_near(
    session: Session, latitude: float, longitude: float, radius_m: float, limit: int,
    after: NearbyAfter | None = None,
) -> list[NearbyOrder]:
    """Pending orders within ``radius_m`` great-circle metres of a point, nearest first (ties
    by id), after ``after`` if given, in ``session``'s transaction (a read-only request calls
    ``Database.find_pending_near``).

    PostGIS on PostgreSQL (KNN-ordered, GiST-indexed); an indexed bounding box plus the exact
    great-circle filter and ordering on SQLite (see ``db.backends``).

    Rows, not ORM entities: this is the hottest read of the API, and entity hydration (identity
    map, instance state) was a fifth of its time for objects that are only serialised.
    """
    return backend_of(session).find_pending_near(session, latitude, longitude, radius_m, limit,
                                                 after)


def page_pending_near(database: Database, codec: CursorCodec, latitude: float,
                      longitude: float, radius_m: float, *, limit: int,
                      cursor: str | None) -> Page[NearbyOrder]:
    """One page of the nearby search for a read-only request, nearest first, in the
    ``GET /orders`` envelope. The cursor is signed like every list's (``CursorCodec``); its
    key is the distance. Forward only: KNN scans run nearest first, so there is no previous
    cursor (a client goes back to the first page by dropping the cursor). No ``totalCount``
    (None): counting every order in the radius is the work the KNN scan exists to skip, and
    it made this statement five times dearer (docs/benchmarks.md)."""
    after = codec.decode_distance(cursor) if cursor else None
    found = database.find_pending_near(latitude, longitude, radius_m, limit + 1, after)
    rows, has_next = found[:limit], len(found) > limit
    return Page(items=rows, has_next_page=has_next, has_previous_page=after is not None,
                next_cursor=codec.encode_distance(*rows[-1].key) if has_next else None,
                previous_cursor=None, total_count=None)


def insert_served_order(session: Session, order: dict[str, Any], history: dict[str, Any],
                        message: dict[str, Any]) -> CreatedOrder | None:
    """Insert a new order with its history and outbox rows, if its location is served (see
    ``db.queries.areas.point_is_served``): the order's row (every column, the same type on
    both databases) and the outbox row's id, or None when no operating area covers it. On
    PostgreSQL one statement and one round trip (the API's busiest write)."""
    return backend_of(session).insert_served_order(session, order, history, message)


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
