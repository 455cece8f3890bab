"""Queries of matching, dispatch, presence history and notifications (PostgreSQL and SQLite)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus, OrderStatus, UserRole, VerificationStatus
from core.geo import bounding_box
from db.backends import backend_of
from db.models import (
    Base,
    GeofenceState,
    LocationSample,
    Notification,
    Order,
    OrderApplication,
    OrderAssignment,
    OrderDispatch,
    OrderMatch,
    ProviderNoShow,
    User,
)

OPEN_MATCH_STATUSES = ("invited", "offered")
# A provider who said no (or let an offer lapse) is not invited or assigned to that order again.
REFUSED_MATCH_STATUSES = ("declined", "expired")
PROVIDER_ROLES = (UserRole.PROVIDER, UserRole.BOTH)


def insert_ignoring_duplicates(session: Session, model: type[Base], rows: Sequence[dict[str, Any]],
                               conflict_columns: Sequence[str]) -> list[Any]:
    """INSERT ... ON CONFLICT DO NOTHING on the given unique columns (both dialects): the
    idempotency of every task that writes matches or notifications. Returns the primary keys
    of the rows actually inserted (RETURNING; SQLite has it since 3.35)."""
    if not rows:
        return []
    return backend_of(session).insert_ignoring_duplicates(session, model, rows,
                                                          conflict_columns)


def mark_notifications_pushed(session: Session, ids: Sequence[uuid.UUID], now: datetime
                              ) -> None:
    if ids:
        session.execute(update(Notification)
                        .where(backend_of(session).one_of(Notification.id, ids))
                        .values(pushed_at=now).execution_options(synchronize_session=False))


# ------------------------------------------------------------------------------------ orders
@dataclass(frozen=True)
class PendingOrderRow:
    id: uuid.UUID
    creator_id: uuid.UUID
    latitude: float
    longitude: float
    service_radius: int


def find_pending_orders(session: Session, region: tuple[float, float, float] | None = None
                        ) -> list[PendingOrderRow]:
    """Pending orders (columns only), oldest first; ``region`` (lat, lon, metres) narrows them
    with the indexed bounding box; the caller applies the exact great-circle test."""
    stmt = select(Order.id, Order.creator_id, Order.latitude, Order.longitude,
                  Order.service_radius).where(Order.status == OrderStatus.PENDING)
    if region is not None:
        box = bounding_box(*region)
        stmt = stmt.where(Order.latitude.between(box.min_lat, box.max_lat))
        if box.lon_ranges is not None:
            stmt = stmt.where(or_(*(Order.longitude.between(lo, hi)
                                    for lo, hi in box.lon_ranges)))
    stmt = stmt.order_by(Order.created_at, Order.id)
    return [PendingOrderRow(*row) for row in session.execute(stmt)]


def claim_order(session: Session, order_id: uuid.UUID, *, wait: bool) -> Order | None:
    """Lock one order row for a matching pass. ``wait=False`` skips it (None) while another
    transaction holds it: that pass is matching it, or it is being changed right now.

    ``FOR NO KEY UPDATE``: as exclusive as ``FOR UPDATE`` against other passes and the order
    commands, but not held up by transactions that only insert rows referencing the order
    (the outbox relay's notifications take ``FOR KEY SHARE`` through the foreign key)."""
    stmt = (select(Order).where(Order.id == order_id)
            .with_for_update(skip_locked=not wait, key_share=True)
            .execution_options(populate_existing=True))
    return session.scalars(stmt).one_or_none()


def claim_due_orders(session: Session, since: datetime, limit: int,
                     exclude: uuid.UUID | None = None) -> list[Order]:
    """Lock up to ``limit`` orders due for a first match: pending, created since ``since``, not
    matched yet, newest first, skipping rows another transaction holds (``SKIP LOCKED``: two
    passes never take the same order, and neither waits for the other). The claim is the row
    lock itself: a pass that dies releases it with its transaction, and the orders are due
    again for the next pass.

    Newest first: orders that found nobody stay due for the whole look-back, and oldest first
    would let them fill every batch while new orders wait."""
    if limit <= 0:
        return []
    matched = select(OrderMatch.id).where(OrderMatch.order_id == Order.id).exists()
    stmt = select(Order).where(Order.status == OrderStatus.PENDING, Order.created_at >= since,
                               ~matched)
    if exclude is not None:
        stmt = stmt.where(Order.id != exclude)
    stmt = (stmt.order_by(Order.created_at.desc(), Order.id.desc()).limit(limit)
            .with_for_update(skip_locked=True, of=Order, key_share=True)
            .execution_options(populate_existing=True))
    return list(session.scalars(stmt))


def matched_order_ids(session: Session, order_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Of ``order_ids``, the ones that already have invitations."""
    if not order_ids:
        return set()
    return set(session.scalars(select(OrderMatch.order_id).distinct()
                               .where(backend_of(session).one_of(OrderMatch.order_id,
                                                                 order_ids))))


def no_show_providers(session: Session, order_ids: Sequence[uuid.UUID]
                      ) -> dict[uuid.UUID, set[uuid.UUID]]:
    """order id -> providers who did not show up for it (never matched to it again)."""
    out: dict[uuid.UUID, set[uuid.UUID]] = {}
    if not order_ids:
        return out
    for order_id, provider_id in session.execute(
            select(ProviderNoShow.order_id, ProviderNoShow.provider_id)
            .where(backend_of(session).one_of(ProviderNoShow.order_id, order_ids))):
        out.setdefault(order_id, set()).add(provider_id)
    return out


def find_tracked_orders(session: Session, provider_id: uuid.UUID) -> list[Order]:
    """The provider's accepted or active orders (the ones with a geofence)."""
    return list(session.scalars(select(Order).where(
        Order.provider_id == provider_id,
        Order.status.in_([OrderStatus.ACCEPTED, OrderStatus.ACTIVE]))))


def busy_provider_ids(session: Session) -> set[uuid.UUID]:
    """Providers assigned to an accepted or active order: not offered anything else."""
    return set(session.scalars(select(Order.provider_id).where(
        Order.provider_id.is_not(None),
        Order.status.in_([OrderStatus.ACCEPTED, OrderStatus.ACTIVE]))))


def eligible_provider_ids(session: Session, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Of ``ids``, the verified provider accounts that still exist, are not erased and are not
    busy on an accepted or active order (one query: this is on every new order's path)."""
    wanted = list(ids)
    if not wanted:
        return set()
    busy = select(Order.id).where(Order.provider_id == User.id,
                                  Order.status.in_([OrderStatus.ACCEPTED, OrderStatus.ACTIVE]))
    return set(session.scalars(select(User.id).where(
        backend_of(session).one_of(User.id, wanted), User.role.in_(PROVIDER_ROLES),
        User.verification_status == VerificationStatus.VERIFIED, User.erased_at.is_(None),
        ~busy.exists())))


def track_record(session: Session, provider_id: uuid.UUID) -> tuple[float | None, float | None]:
    """(acceptance rate, completion rate), None when there is no history yet.

    Acceptance: accepted / decided applications. Completion: completed / orders that were
    assigned to the provider and are past acceptance."""
    decided = session.execute(select(
        func.count(),
        func.sum(case((OrderApplication.status == ApplicationStatus.ACCEPTED, 1), else_=0)),
    ).where(OrderApplication.provider_id == provider_id,
            OrderApplication.status.in_([ApplicationStatus.ACCEPTED,
                                         ApplicationStatus.REJECTED]))).one()
    finished = session.execute(select(
        func.count(),
        func.sum(case((Order.status == OrderStatus.COMPLETED, 1), else_=0)),
    ).where(Order.provider_id == provider_id,
            Order.status.in_([OrderStatus.COMPLETED, OrderStatus.CANCELLED,
                              OrderStatus.DISPUTED]))).one()
    # No-shows (issue 17) count as assignments not completed, however the order ended (it may
    # have been re-opened and given to someone else); the cancelled order itself is not
    # counted twice.
    no_shows = int(session.scalar(select(func.count()).select_from(ProviderNoShow).where(
        ProviderNoShow.provider_id == provider_id)) or 0)
    own_no_shows = int(session.scalar(select(func.count()).select_from(Order).where(
        Order.provider_id == provider_id, Order.status == OrderStatus.CANCELLED,
        Order.cancellation_reason == "no_show")) or 0)
    assigned = finished[0] - own_no_shows + no_shows
    acceptance = (decided[1] or 0) / decided[0] if decided[0] else None
    completion = (finished[1] or 0) / assigned if assigned else None
    return acceptance, completion


# ----------------------------------------------------------------------------------- matches
def has_matches(session: Session, order_id: uuid.UUID) -> bool:
    return session.scalar(select(OrderMatch.id).where(OrderMatch.order_id == order_id)
                          .limit(1)) is not None


def find_matches_for_order(session: Session, order_id: uuid.UUID) -> list[OrderMatch]:
    return list(session.scalars(select(OrderMatch).where(OrderMatch.order_id == order_id)
                                .order_by(OrderMatch.rank, OrderMatch.id)))


def find_open_matches(session: Session, order_ids: Sequence[uuid.UUID]) -> list[OrderMatch]:
    """Open invitations and offers of these orders, by order then rank."""
    if not order_ids:
        return []
    return list(session.scalars(select(OrderMatch).where(
        backend_of(session).one_of(OrderMatch.order_id, order_ids),
        OrderMatch.status.in_(OPEN_MATCH_STATUSES))
        .order_by(OrderMatch.order_id, OrderMatch.rank, OrderMatch.id)))


def find_match(session: Session, match_id: uuid.UUID, *, for_update: bool = False
               ) -> OrderMatch | None:
    stmt = select(OrderMatch).where(OrderMatch.id == match_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).one_or_none()


def select_invitations(provider_id: uuid.UUID) -> Select[OrderMatch]:
    """The provider's open invitations and offers on pending orders (for ``paginate``)."""
    return (select(OrderMatch).join(Order, Order.id == OrderMatch.order_id)
            .where(OrderMatch.provider_id == provider_id,
                   OrderMatch.status.in_(OPEN_MATCH_STATUSES),
                   Order.status == OrderStatus.PENDING))


def orders_by_id(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Order]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    return {order.id: order
            for order in session.scalars(select(Order).where(
                backend_of(session).one_of(Order.id, wanted)))}


def refused_pairs(session: Session, order_ids: Sequence[uuid.UUID]
                  ) -> set[tuple[uuid.UUID, uuid.UUID]]:
    if not order_ids:
        return set()
    rows = session.execute(select(OrderMatch.order_id, OrderMatch.provider_id).where(
        OrderMatch.order_id.in_(order_ids), OrderMatch.status.in_(REFUSED_MATCH_STATUSES)))
    # A provider who did not show up for an order (issue 17) is never matched to it again.
    no_shows = session.execute(select(ProviderNoShow.order_id, ProviderNoShow.provider_id)
                               .where(ProviderNoShow.order_id.in_(order_ids)))
    return {(o, p) for o, p in rows} | {(o, p) for o, p in no_shows}


def invited_pairs(session: Session, order_ids: Sequence[uuid.UUID]
                  ) -> dict[tuple[uuid.UUID, uuid.UUID], str]:
    if not order_ids:
        return {}
    rows = session.execute(select(OrderMatch.order_id, OrderMatch.provider_id,
                                  OrderMatch.status).where(OrderMatch.order_id.in_(order_ids)))
    return {(o, p): s for o, p, s in rows}


def next_ranks(session: Session, order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """For each order, the rank a newly added match gets (after every existing one)."""
    if not order_ids:
        return {}
    rows = session.execute(select(OrderMatch.order_id, func.max(OrderMatch.rank))
                           .where(OrderMatch.order_id.in_(order_ids))
                           .group_by(OrderMatch.order_id))
    found = {o: int(r) + 1 for o, r in rows}
    return {o: found.get(o, 1) for o in order_ids}


def next_offer_candidate(session: Session, order_id: uuid.UUID,
                         busy: set[uuid.UUID]) -> OrderMatch | None:
    """The best-ranked invitation of the order that has not been offered yet, skipping
    providers busy elsewhere."""
    stmt = (select(OrderMatch).where(OrderMatch.order_id == order_id,
                                     OrderMatch.status == "invited")
            .order_by(OrderMatch.rank, OrderMatch.id).with_for_update())
    return next((m for m in session.scalars(stmt) if m.provider_id not in busy), None)


def close_open_matches(session: Session, order_id: uuid.UUID, now: datetime) -> None:
    for match in session.scalars(select(OrderMatch).where(
            OrderMatch.order_id == order_id, OrderMatch.status.in_(OPEN_MATCH_STATUSES))):
        match.status, match.responded_at = "closed", now


# ------------------------------------------------------------------------------- assignments
def find_assignments(session: Session, order_ids: Sequence[uuid.UUID]
                     ) -> dict[uuid.UUID, OrderAssignment]:
    if not order_ids:
        return {}
    return {a.order_id: a for a in session.scalars(
        select(OrderAssignment).where(OrderAssignment.order_id.in_(order_ids)))}


def delete_assignments(session: Session, order_ids: Sequence[uuid.UUID]) -> int:
    if not order_ids:
        return 0
    result = session.execute(delete(OrderAssignment)
                             .where(OrderAssignment.order_id.in_(order_ids))
                             .execution_options(synchronize_session="fetch"))
    return int(getattr(result, "rowcount", 0) or 0)


def delete_stale_assignments(session: Session) -> int:
    """Assignments of orders that are no longer pending (accepted, cancelled...)."""
    stale = select(Order.id).where(Order.status != OrderStatus.PENDING)
    result = session.execute(delete(OrderAssignment)
                             .where(OrderAssignment.order_id.in_(stale))
                             .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


# ---------------------------------------------------------------------------------- dispatch
def find_dispatch(session: Session, order_id: uuid.UUID, *, for_update: bool = False
                  ) -> OrderDispatch | None:
    stmt = select(OrderDispatch).where(OrderDispatch.order_id == order_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).one_or_none()


def find_dispatches(session: Session, order_ids: Sequence[uuid.UUID], status: str
                    ) -> list[OrderDispatch]:
    if not order_ids:
        return []
    return list(session.scalars(select(OrderDispatch).where(
        OrderDispatch.order_id.in_(order_ids), OrderDispatch.status == status)
        .with_for_update()))


# -------------------------------------------------------------------------- geofence, history
def find_geofence_state(session: Session, order_id: uuid.UUID, *, for_update: bool = False
                        ) -> GeofenceState | None:
    stmt = select(GeofenceState).where(GeofenceState.order_id == order_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def find_location_history(session: Session, provider_id: uuid.UUID, limit: int
                          ) -> list[LocationSample]:
    return list(session.scalars(select(LocationSample)
                                .where(LocationSample.provider_id == provider_id)
                                .order_by(LocationSample.recorded_at.desc()).limit(limit)))


def purge_location_history(session: Session, before: datetime, batch: int) -> int:
    """Delete up to ``batch`` samples recorded before ``before`` (oldest first, so a big
    backlog is purged over several short transactions instead of one long lock)."""
    ids = select(LocationSample.id).where(LocationSample.recorded_at < before) \
        .order_by(LocationSample.recorded_at).limit(batch)
    result = session.execute(delete(LocationSample).where(and_(LocationSample.id.in_(ids)))
                             .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def usernames(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    wanted = list(ids)
    if not wanted:
        return {}
    return {i: n for i, n in session.execute(
        select(User.id, User.username).where(User.id.in_(wanted)))}
