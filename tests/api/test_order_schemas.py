"""The hand-written order serializer must say exactly what the documented schema says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from api.blueprints.order_schemas import OrderSchema, order_json
from core.enums import OrderStatus
from tests.factories import OrderFactory, UserFactory


@pytest.mark.parametrize("variant", ["pending", "accepted", "cancelled-jpy", "kwd-scheduled"])
def test_fast_serializer_equals_schema(any_session: Session, variant: str) -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    kwargs: dict[str, object] = {}
    if variant == "accepted":
        provider = UserFactory(provider=True)
        kwargs = {"status": OrderStatus.ACCEPTED, "provider_id": provider.id,
                  "accepted_at": now, "agreed_amount_minor": 3100}
    elif variant == "cancelled-jpy":
        kwargs = {"status": OrderStatus.CANCELLED, "currency": "JPY",
                  "base_amount_minor": 1500, "cancelled_at": now,
                  "cancellation_reason": "rain", "location_address": None,
                  "description": None}
    elif variant == "kwd-scheduled":
        kwargs = {"currency": "KWD", "base_amount_minor": 1250,
                  "scheduled_for": now + timedelta(days=2), "tags": ["a", "b"],
                  "requirements": {"camera": "4k"}}
    order = OrderFactory(**kwargs)
    any_session.refresh(order)
    assert order_json(order) == OrderSchema().dump(order)


def test_fast_serializer_reads_nearby_rows_like_entities(any_session: Session) -> None:
    """The nearby search serialises table rows, not entities: same output."""
    from db.queries.orders import find_pending_near

    order = OrderFactory(latitude=10.0, longitude=20.0, tags=["x"],
                         requirements={"camera": "4k"},
                         scheduled_for=datetime.now(UTC) + timedelta(days=1))
    any_session.refresh(order)
    [near] = find_pending_near(any_session, 10.0, 20.0, 1_000, limit=5)
    assert order_json(near.order) == OrderSchema().dump(order)
