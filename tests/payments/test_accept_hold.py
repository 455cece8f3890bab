"""Accepting an offer holds the agreed amount on the creator's card, in the same request."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.models import (
    LedgerEntry,
    Order,
    OutboxMessage,
    PaymentEscrow,
    PaymentTransaction,
    SavedPaymentMethod,
    User,
)
from services import Payments
from tests.api.orders_helpers import call
from tests.payments.conftest import accept, application_statuses, escrow_of, offer


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_accept_with_a_card_holds_the_agreed_amount(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order, app_id = offer(client, people, proposed="30.00")
    response = accept(client, people, order["id"], app_id, "pm_card_visa")
    assert response.status_code == 200, response.json
    escrow = escrow_of(db_session, order["id"])
    assert escrow.state == "authorized"
    assert escrow.authorized_minor == 3000 and escrow.amount_minor == 3000
    assert escrow.hold_expires_at is not None
    [hold] = [op for op in pay.gateway.operations() if op["op"] == "hold"]  # type: ignore[attr-defined]
    assert hold["amount"] == 3000 and hold["key"].endswith("/hold/1/pm_card_visa")
    txn = db_session.get(PaymentTransaction, escrow.transaction_id)
    assert txn is not None and txn.status.value == "processing"
    assert txn.stripe_payment_intent_id == escrow.intent_ref
    method = db_session.scalars(select(SavedPaymentMethod)).one()
    assert (method.method_ref, method.last4, method.is_default) == ("pm_card_visa", "4242", True)
    topics = db_session.scalars(select(OutboxMessage.topic).order_by(OutboxMessage.id)).all()
    assert topics[-2:] == ["order:accepted", "payment:processing"]


def test_declined_card_fails_the_acceptance_cleanly(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order, app_id = offer(client, people)
    before_outbox = _count(db_session, OutboxMessage)
    response = accept(client, people, order["id"], app_id, "pm_card_chargeDeclined")
    assert response.status_code == 402
    assert response.json["error"]["code"] == "CARD_DECLINED"
    # Nothing half-done: the order, its applications and every payment table are untouched.
    stored = db_session.get(Order, uuid.UUID(order["id"]))
    assert stored is not None and stored.status is OrderStatus.PENDING
    assert stored.provider_id is None and stored.agreed_amount_minor is None
    assert application_statuses(db_session, order["id"]) == ["pending", "pending"]
    for model in (PaymentEscrow, PaymentTransaction, SavedPaymentMethod, LedgerEntry):
        assert _count(db_session, model) == 0, model
    assert _count(db_session, OutboxMessage) == before_outbox
    # The creator tries again with another card: accepted, one hold.
    retry = accept(client, people, order["id"], app_id, "pm_card_visa")
    assert retry.status_code == 200, retry.json
    assert escrow_of(db_session, order["id"]).state == "authorized"


def test_a_retried_acceptance_reuses_the_same_hold(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order, app_id = offer(client, people)
    headers = {"Idempotency-Key": "accept-once"}
    body = {"applicationId": app_id, "paymentMethodId": "pm_card_visa"}
    first = call(client, "POST", f"/orders/{order['id']}/accept", people["creator"], body,
                 headers=headers)
    again = call(client, "POST", f"/orders/{order['id']}/accept", people["creator"], body,
                 headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    holds = [op for op in pay.gateway.operations() if op["op"] == "hold"]  # type: ignore[attr-defined]
    assert len(holds) == 1


def test_the_default_saved_card_is_used_and_a_card_is_required(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order, app_id = offer(client, people)
    missing = accept(client, people, order["id"], app_id, pm=None)
    assert missing.status_code == 402
    assert missing.json["error"]["code"] == "PAYMENT_METHOD_REQUIRED"
    saved = call(client, "POST", "/payments/methods", people["creator"],
                 {"paymentMethodId": "pm_card_mastercard"})
    assert saved.status_code == 201, saved.json
    ok = accept(client, people, order["id"], app_id, pm=None)
    assert ok.status_code == 200, ok.json
    escrow = escrow_of(db_session, order["id"])
    assert escrow.state == "authorized" and escrow.payment_method_ref == "pm_card_mastercard"


def test_a_far_future_order_is_authorised_later(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    when = datetime.now(UTC) + timedelta(days=20)
    order, app_id = offer(client, people, scheduledFor=when.isoformat())
    response = accept(client, people, order["id"], app_id, "pm_card_visa")
    assert response.status_code == 200, response.json
    escrow = escrow_of(db_session, order["id"])
    assert escrow.state == "awaiting_authorization" and escrow.intent_ref is None
    assert escrow.authorize_at is not None
    assert abs((escrow.authorize_at - (when - timedelta(hours=24))).total_seconds()) < 5
    assert not [op for op in pay.gateway.operations() if op["op"] == "hold"]  # type: ignore[attr-defined]


def test_accept_bad_input(client: FlaskClient, people: dict[str, User], pay: Payments,
                          db_session: Session) -> None:
    order, app_id = offer(client, people)
    for pm in ("card_123", "", "pm_" + "x" * 300, 42, "pm_with space"):
        response = call(client, "POST", f"/orders/{order['id']}/accept", people["creator"],
                        {"applicationId": app_id, "paymentMethodId": pm})
        assert response.status_code == 400, pm
        assert response.json["error"]["code"] == "VALIDATION_ERROR"
        assert "paymentMethodId" in response.json["error"]["details"]
    unknown = accept(client, people, order["id"], app_id, "pm_no_such_card")
    assert unknown.status_code == 400
    assert unknown.json["error"]["details"] == {
        "paymentMethodId": ["No such object at the payment processor."]}
    assert _count(db_session, PaymentEscrow) == 0
    stored = db_session.get(Order, uuid.UUID(order["id"]))
    assert stored is not None and stored.status is OrderStatus.PENDING
