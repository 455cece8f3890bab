"""Analytics queries: set-based aggregates over orders, applications and payments in a time
window ``[since, until)``. Every function is one GROUP BY (or one aggregate) statement, so the
cost grows with the rows in the window, never with a round trip per row.

Medians differ per database (``db.backends``): PostgreSQL computes them in the database
(``percentile_cont``); SQLite (standalone mode) has no percentile aggregate, so the durations
are fetched and the median taken in Python, which is fine at standalone sizes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus, OrderStatus
from db.backends import backend_of
from db.models import Order, OrderApplication, PaymentTransaction

Window = tuple[datetime, datetime]


def _within(column: Any, window: Window) -> ColumnElement[bool]:
    since, until = window
    return and_(column >= since, column < until)


def count_orders_by_status(session: Session, creator_id: uuid.UUID,
                           window: Window) -> dict[OrderStatus, int]:
    """A creator's orders posted in the window, by status."""
    rows = session.execute(
        select(Order.status, func.count()).where(
            Order.creator_id == creator_id, _within(Order.created_at, window))
        .group_by(Order.status))
    return {status: int(n) for status, n in rows}


def sum_spend_by_currency(session: Session, creator_id: uuid.UUID,
                          window: Window) -> dict[str, int]:
    """Minor units a creator spent on orders completed in the window: the agreed amount, or
    the posted base amount where none was agreed."""
    amount = func.coalesce(Order.agreed_amount_minor, Order.base_amount_minor)
    rows = session.execute(
        select(Order.currency, func.sum(amount)).where(
            Order.creator_id == creator_id, Order.status == OrderStatus.COMPLETED,
            _within(Order.completed_at, window))
        .group_by(Order.currency))
    return {currency: int(total) for currency, total in rows}


def sum_earnings_by_currency(session: Session, provider_id: uuid.UUID,
                             window: Window) -> dict[str, int]:
    """Net minor units settled (transferred) to a provider in the window."""
    rows = session.execute(
        select(PaymentTransaction.currency, func.sum(PaymentTransaction.net_amount_minor))
        .where(PaymentTransaction.payee_id == provider_id,
               PaymentTransaction.settled_at.is_not(None),
               _within(PaymentTransaction.settled_at, window))
        .group_by(PaymentTransaction.currency))
    return {currency: int(total) for currency, total in rows}


def count_applications(session: Session, provider_id: uuid.UUID,
                       window: Window) -> tuple[int, int]:
    """(applications sent in the window, of which accepted)."""
    accepted = func.count().filter(OrderApplication.status == ApplicationStatus.ACCEPTED)
    total, won = session.execute(
        select(func.count(), accepted).where(
            OrderApplication.provider_id == provider_id,
            _within(OrderApplication.created_at, window))).one()
    return int(total), int(won or 0)


def count_assigned_orders(session: Session, provider_id: uuid.UUID,
                          window: Window) -> tuple[int, int]:
    """(orders assigned to a provider, i.e. accepted, in the window; of which completed)."""
    completed = func.count().filter(Order.status == OrderStatus.COMPLETED)
    total, done = session.execute(
        select(func.count(), completed).where(
            Order.provider_id == provider_id, Order.accepted_at.is_not(None),
            _within(Order.accepted_at, window))).one()
    return int(total), int(done or 0)


def median_seconds_to_accept(session: Session, window: Window, *,
                             provider_id: uuid.UUID | None = None) -> float | None:
    """Median seconds from posting to acceptance over orders posted in the window and
    accepted (optionally only a provider's); None when there are none."""
    conditions = [Order.accepted_at.is_not(None), _within(Order.created_at, window)]
    if provider_id is not None:
        conditions.append(Order.provider_id == provider_id)
    return backend_of(session).median_seconds_between(
        session, Order.created_at, Order.accepted_at, conditions)


def count_posted_and_accepted(session: Session, window: Window) -> tuple[int, int]:
    """(orders posted in the window, of which accepted at some point)."""
    accepted = func.count().filter(Order.accepted_at.is_not(None))
    posted, filled = session.execute(
        select(func.count(), accepted).where(_within(Order.created_at, window))).one()
    return int(posted), int(filled or 0)


def sum_settled_by_currency(session: Session,
                            window: Window) -> dict[str, tuple[int, int, int, int]]:
    """currency -> (gross, platform fees, processing fees, settlements) over payments settled
    in the window: the fee split is fixed at settlement, so that is where GMV is final."""
    t = PaymentTransaction
    rows = session.execute(
        select(t.currency, func.sum(t.gross_amount_minor), func.sum(t.platform_fee_minor),
               func.sum(t.processing_fee_minor), func.count())
        .where(t.settled_at.is_not(None), _within(t.settled_at, window))
        .group_by(t.currency))
    return {c: (int(g), int(p), int(f), int(n)) for c, g, p, f, n in rows}


def latest_change_of_user(session: Session, user_id: uuid.UUID) -> datetime | None:
    """The newest ``updated_at`` among the user's orders (either side), applications and
    payments: a cheap version stamp for caching (three index lookups in one statement).
    Every write to these rows bumps ``updated_at``."""
    newest = [
        select(func.max(Order.updated_at)).where(
            or_(Order.creator_id == user_id, Order.provider_id == user_id)).scalar_subquery(),
        select(func.max(OrderApplication.updated_at)).where(
            OrderApplication.provider_id == user_id).scalar_subquery(),
        select(func.max(PaymentTransaction.updated_at)).where(
            or_(PaymentTransaction.payer_id == user_id,
                PaymentTransaction.payee_id == user_id)).scalar_subquery(),
    ]
    values = session.execute(select(*newest)).one()
    present = [v for v in values if v is not None]
    return max(present) if present else None
