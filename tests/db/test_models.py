"""Model behaviour that must be identical on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from db.models import Order, PaymentTransaction
from tests.factories import OrderFactory, UserFactory


def test_timestamps_are_aware_utc_and_updated_at_is_maintained(any_session: Session) -> None:
    with freeze_time("2026-01-01T12:00:00Z"):
        order = OrderFactory()
    created = order.created_at
    assert created == datetime(2026, 1, 1, 12, tzinfo=UTC)
    with freeze_time("2026-01-01T12:05:00Z"):
        order.title = "renamed"
        any_session.flush()
    any_session.expire_all()
    reloaded = any_session.get(Order, order.id)
    assert reloaded is not None
    assert reloaded.created_at == created
    assert reloaded.updated_at == created + timedelta(minutes=5)
    assert reloaded.updated_at.tzinfo is not None


def test_naive_datetimes_are_refused(any_session: Session) -> None:
    order = OrderFactory()
    order.scheduled_for = datetime(2026, 1, 1, 12)  # naive: a bug we want loud
    with pytest.raises(StatementError):
        any_session.flush()


def test_money_is_integer_minor_units(any_session: Session) -> None:
    order = OrderFactory(base_amount_minor=150_000, currency="JPY")
    any_session.expire_all()
    value = any_session.scalar(select(Order.base_amount_minor).where(Order.id == order.id))
    assert value == 150_000 and isinstance(value, int)


def test_payment_split_must_balance_in_the_database(any_session: Session) -> None:
    user = UserFactory()
    any_session.add(PaymentTransaction(
        payer_id=user.id, gross_amount_minor=1000, platform_fee_minor=150,
        processing_fee_minor=59, net_amount_minor=790, currency="USD",
    ))
    with pytest.raises(IntegrityError):
        any_session.flush()


def test_enum_values_are_stored_lower_case(any_session: Session) -> None:
    OrderFactory()
    stored = any_session.execute(text("SELECT status FROM live_stream_orders")).scalars().all()
    assert set(stored) == {"pending"}
