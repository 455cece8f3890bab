"""The pure escrow rules and the offline processor's Stripe-like behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.enums import OrderStatus
from domain.payments.escrow import EscrowState, HoldTiming, capture_amount, may_settle
from domain.payments.gateway import CardDeclined, InvalidRequest
from domain.payments.offline import MemoryStore, OfflineGateway

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_hold_timing() -> None:
    timing = HoldTiming()
    assert timing.authorize_at(None, NOW) == NOW
    assert timing.authorize_at(NOW + timedelta(days=5), NOW) == NOW
    far = NOW + timedelta(days=30)
    assert timing.authorize_at(far, NOW) == far - timedelta(hours=24)
    assert timing.needs_renewal(NOW + timedelta(hours=23), NOW)
    assert not timing.needs_renewal(NOW + timedelta(days=2), NOW)


def test_capture_amount_and_settlement_eligibility() -> None:
    assert capture_amount(3000, 3000, 0) == 3000
    assert capture_amount(2500, 3000, 0) == 2500  # the agreed amount dropped
    assert capture_amount(3500, 3000, 0) == 3000  # never more than held
    assert capture_amount(3000, 3000, 5000) == 0
    past = NOW - timedelta(seconds=1)
    assert may_settle(EscrowState.CAPTURED, past, OrderStatus.COMPLETED, None, NOW)
    assert not may_settle(EscrowState.CAPTURED, past, OrderStatus.DISPUTED, None, NOW)
    assert not may_settle(EscrowState.CAPTURED, past, OrderStatus.COMPLETED, "chargeback", NOW)
    assert not may_settle(EscrowState.CAPTURED, NOW + timedelta(1), OrderStatus.COMPLETED,
                          None, NOW)
    assert may_settle(EscrowState.SETTLING, None, OrderStatus.DISPUTED, "chargeback", NOW)
    assert not may_settle(EscrowState.AUTHORIZED, past, OrderStatus.COMPLETED, None, NOW)


def test_offline_processor_replays_keys_including_declines() -> None:
    gateway = OfflineGateway(MemoryStore())
    hold = {"amount": 500, "currency": "JPY", "customer_id": None, "order_id": "o1",
            "off_session": True}
    first = gateway.create_hold(payment_method_id="pm_card_visa", idempotency_key="k", **hold)
    again = gateway.create_hold(payment_method_id="pm_card_visa", idempotency_key="k", **hold)
    assert first == again and len(gateway.operations()) == 1
    for _ in range(2):
        with pytest.raises(CardDeclined):
            gateway.create_hold(payment_method_id="pm_card_chargeDeclined",
                                idempotency_key="d", **hold)
    assert len(gateway.operations()) == 2  # the decline happened once, then was replayed
    gateway.capture(first.id, amount=400, idempotency_key="c")
    with pytest.raises(InvalidRequest):
        gateway.capture(first.id, amount=400, idempotency_key="c2")
    with pytest.raises(InvalidRequest):
        gateway.refund(first.id, amount=401, order_id="o1", idempotency_key="r")
