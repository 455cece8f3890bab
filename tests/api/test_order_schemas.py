"""The one order projection (``domain.projections.order_view``) is what ``OrderSchema``
documents, for every variant of an order and whether it was read as an entity or a row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from domain.projections import PRIVATE_FIELDS, order_view, public_order_view
from tests.api.openapi_contract import Contract, published_contract
from tests.factories import OrderFactory, UserFactory


@pytest.fixture(scope="module")
def contract(app: Flask) -> Contract:
    return published_contract(app)


@pytest.mark.parametrize("variant", ["pending", "accepted", "cancelled-jpy", "kwd-scheduled"])
def test_the_projection_is_what_the_schema_documents(any_session: Session, contract: Contract,
                                                     variant: str) -> None:
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
    contract.component("Order", order_view(order))
    if variant == "kwd-scheduled":
        assert order_view(order)["baseAmount"] == "1.250"
        assert order_view(order)["scheduledFor"] == (now + timedelta(days=2)).isoformat()


def test_rows_project_like_entities(any_session: Session) -> None:
    """The nearby search projects table rows, not entities: same output."""
    from db.queries.orders import find_pending_near

    order = OrderFactory(latitude=10.0, longitude=20.0, tags=["x"],
                         requirements={"camera": "4k"},
                         scheduled_for=datetime.now(UTC) + timedelta(days=1))
    any_session.refresh(order)
    [near] = find_pending_near(any_session, 10.0, 20.0, 1_000, limit=5)
    assert order_view(near.order) == order_view(order)


def test_the_public_view_is_the_view_without_personal_data(any_session: Session) -> None:
    order = OrderFactory(description="Meet me at Rua Augusta 12", location_address="Rua Augusta",
                         status=OrderStatus.CANCELLED, cancellation_reason="my own words")
    any_session.refresh(order)
    full, public = order_view(order), public_order_view(order)
    expected: dict[str, Any] = {k: v for k, v in full.items() if k not in PRIVATE_FIELDS}
    expected["location"] = {"latitude": order.latitude, "longitude": order.longitude}
    assert public == expected
    assert "Rua Augusta" not in repr(public) and "my own words" not in repr(public)
