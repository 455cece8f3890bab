"""Capture, settlement, cancellation, disputes and renewals, through the same commands the
tasks run (called twice where it matters: the second run must change nothing)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.models import Order, OutboxMessage, PaymentTransaction, User
from db.queries import payments as queries
from domain.payments import capture, holds, ledger, settlement
from services import Payments
from tests.api.orders_helpers import call
from tests.payments.conftest import Clock, accepted, deliver, escrow_of, onboard

NOW = datetime.now


def _now() -> datetime:
    return datetime.now(UTC)


def _ops(pay: Payments, kind: str) -> list[dict[str, object]]:
    return [op for op in pay.gateway.operations() if op["op"] == kind]  # type: ignore[attr-defined]


def _balances(session: Session) -> dict[tuple[str, str], int]:
    return {(a, c): b for a, c, b in queries.ledger_balances(session) if b != 0}


def _settle(session: Session, pay: Payments, order_id: uuid.UUID) -> bool:
    split = settlement.split(session, pay.config, order_id, _now())
    paid = settlement.pay_out(session, pay.gateway, order_id, _now())
    session.commit()
    return split or paid


def test_capture_then_settle_after_the_dispute_window(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order = accepted(client, people, proposed="30.00")
    oid = uuid.UUID(order["id"])
    deliver(db_session, oid, ago=timedelta(hours=1))
    for _ in range(2):  # redelivered: captured once
        capture.capture(db_session, pay.gateway, pay.config, oid, _now())
        db_session.commit()
    escrow = escrow_of(db_session, oid)
    assert (escrow.state, escrow.captured_minor) == ("captured", 3000)
    assert len(_ops(pay, "capture")) == 1
    # Inside the dispute window nothing settles, and without a payout account neither.
    assert not _settle(db_session, pay, oid)
    escrow.settle_after = _now() - timedelta(seconds=1)
    db_session.commit()
    assert not _settle(db_session, pay, oid)
    onboard(db_session, people["provider"])
    assert queries.find_due_for_settlement(db_session, _now(), 10) == [oid]
    assert _settle(db_session, pay, oid)
    assert not _settle(db_session, pay, oid)  # twice: one transfer
    escrow = escrow_of(db_session, oid)
    assert escrow.state == "settled" and escrow.transfer_ref
    txn = db_session.get(PaymentTransaction, escrow.transaction_id)
    assert txn is not None and txn.status.value == "succeeded" and txn.settled_at
    # 15 % platform; 2.9 % + 30c processing, each rounded half-up: 450 + 117 + 2433 = 3000.
    assert (txn.gross_amount_minor, txn.platform_fee_minor, txn.processing_fee_minor,
            txn.net_amount_minor) == (3000, 450, 117, 2433)
    [transfer] = _ops(pay, "transfer")
    assert transfer["amount"] == 2433 and transfer["order"] == str(oid)
    assert transfer["key"] == f"taplive/order/{oid}/transfer"
    assert _balances(db_session) == {
        ("creator_funding", "USD"): -3000, ("platform_revenue", "USD"): 450,
        ("processing_fees", "USD"): 117, ("provider_paid_out", "USD"): 2433}
    topics = db_session.scalars(select(OutboxMessage.topic).where(
        OutboxMessage.topic.like("payment:%")).order_by(OutboxMessage.id)).all()
    assert topics == ["payment:processing", "payment:completed", "payment:completed"]


def test_partial_capture_when_the_agreed_amount_dropped(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order = accepted(client, people, proposed="30.00")
    oid = uuid.UUID(order["id"])
    deliver(db_session, oid, agreed_minor=2500)
    capture.capture(db_session, pay.gateway, pay.config, oid, _now())
    db_session.commit()
    escrow = escrow_of(db_session, oid)
    assert (escrow.authorized_minor, escrow.captured_minor) == (3000, 2500)
    assert _ops(pay, "capture")[0]["amount"] == 2500


def test_cancelling_before_capture_releases_the_hold(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order = accepted(client, people)
    response = call(client, "POST", f"/orders/{order['id']}/cancel", people["provider"],
                    {"reason": "flat tyre"})
    assert response.status_code == 200
    oid = uuid.UUID(order["id"])
    for _ in range(2):
        holds.release(db_session, pay.gateway, pay.config, oid, _now())
        db_session.commit()
    escrow = escrow_of(db_session, oid)
    assert escrow.state == "released" and len(_ops(pay, "cancel")) == 1
    assert pay.gateway.retrieve_intent(escrow.intent_ref or "").status == "canceled"
    assert _balances(db_session) == {}  # no money ever moved


def test_a_dispute_freezes_settlement_and_a_release_resolution_pays_the_provider(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order = accepted(client, people)
    oid = uuid.UUID(order["id"])
    deliver(db_session, oid, ago=timedelta(hours=1))
    onboard(db_session, people["provider"])
    capture.capture(db_session, pay.gateway, pay.config, oid, _now())
    db_session.commit()
    disputed = call(client, "POST", f"/orders/{order['id']}/dispute", people["creator"],
                    {"reason": "blurry"})
    assert disputed.status_code == 200
    escrow_of(db_session, oid).settle_after = _now() - timedelta(minutes=1)
    db_session.commit()
    assert queries.find_due_for_settlement(db_session, _now(), 10) == []
    assert not _settle(db_session, pay, oid)
    resolved = call(client, "POST", f"/admin/orders/{order['id']}/resolve", people["admin"],
                    {"outcome": "release", "note": "fine"})
    assert resolved.status_code == 200, resolved.json
    assert capture.apply_resolution(db_session, pay.gateway, pay.config, oid, _now()) == "nothing"
    assert _settle(db_session, pay, oid)
    assert escrow_of(db_session, oid).state == "settled"


@pytest.mark.parametrize(("refund", "captured_first", "state", "refunded", "net_transfer"), [
    (None, True, "refunded", 3000, None),      # full refund after capture
    ("10.00", True, "settled", 1000, 1612),     # partial: 20.00 settles (300+88+1612)
    (None, False, "released", 0, None),        # full refund before capture: hold released
    ("10.00", False, "settled", 0, 1612),      # partial before capture: capture only 20.00
])
def test_refund_resolutions(client: FlaskClient, people: dict[str, User], pay: Payments,
                            db_session: Session, refund: str | None, captured_first: bool,
                            state: str, refunded: int, net_transfer: int | None) -> None:
    order = accepted(client, people, proposed="30.00")
    oid = uuid.UUID(order["id"])
    deliver(db_session, oid)
    onboard(db_session, people["provider"])
    if captured_first:
        capture.capture(db_session, pay.gateway, pay.config, oid, _now())
        db_session.commit()
    assert call(client, "POST", f"/orders/{order['id']}/dispute", people["creator"],
                {"reason": "wrong place"}).status_code == 200
    body = {"outcome": "refund", "note": "provider at the wrong pier"}
    if refund:
        body["refundAmount"] = refund
    resolved = call(client, "POST", f"/admin/orders/{order['id']}/resolve", people["admin"], body)
    assert resolved.status_code == 200, resolved.json
    for _ in range(2):
        capture.apply_resolution(db_session, pay.gateway, pay.config, oid, _now())
        db_session.commit()
    _settle(db_session, pay, oid)
    escrow = escrow_of(db_session, oid)
    assert escrow.state == state and escrow.refunded_minor == refunded
    assert len(_ops(pay, "refund")) == (1 if refunded else 0)
    transfers = _ops(pay, "transfer")
    assert [t["amount"] for t in transfers] == ([net_transfer] if net_transfer else [])
    assert sum(b for (_, c), b in _balances(db_session).items() if c == "USD") == 0
    assert _balances(db_session).get(("escrow", "USD"), 0) == 0


def test_resolution_refund_bad_input(client: FlaskClient, people: dict[str, User],
                                     pay: Payments, db_session: Session) -> None:
    order = accepted(client, people, proposed="30.00")
    oid = uuid.UUID(order["id"])
    deliver(db_session, oid)
    call(client, "POST", f"/orders/{order['id']}/dispute", people["creator"], {"reason": "x"})
    for body, field in (({"outcome": "refund", "note": "n", "refundAmount": "30.01"},
                         "refundAmount"),
                        ({"outcome": "refund", "note": "n", "refundAmount": "1.001"},
                         "refundAmount"),
                        ({"outcome": "release", "note": "n", "refundAmount": "1"},
                         "refundAmount"),
                        ({"outcome": "refund", "note": "n", "refundAmount": True},
                         "refundAmount")):
        response = call(client, "POST", f"/admin/orders/{order['id']}/resolve",
                        people["admin"], body)
        assert response.status_code == 400, body
        assert field in response.json["error"]["details"]
    stored = db_session.get(Order, oid)
    assert stored is not None and stored.status is OrderStatus.DISPUTED
    assert escrow_of(db_session, oid).refund_due_minor == 0


def test_holds_are_renewed_before_they_lapse_or_the_order_is_flagged(
        client: FlaskClient, people: dict[str, User], pay: Payments, clock: Clock,
        db_session: Session) -> None:
    order = accepted(client, people)
    oid = uuid.UUID(order["id"])
    escrow = escrow_of(db_session, oid)
    first = escrow.intent_ref
    later = _now() + timedelta(days=6, hours=1)
    assert holds.renew(db_session, pay.gateway, pay.config, oid, _now()) == "fresh"
    assert queries.find_due_for_renewal(db_session, later + timedelta(hours=24), 10) == [oid]
    clock.now = later
    assert holds.renew(db_session, pay.gateway, pay.config, oid, later) == "renewed"
    db_session.commit()
    escrow = escrow_of(db_session, oid)
    assert escrow.intent_ref != first and escrow.hold_generation == 2
    assert pay.gateway.retrieve_intent(first or "").status == "canceled"
    assert pay.gateway.retrieve_intent(escrow.intent_ref or "").status == "requires_capture"
    # A declined renewal keeps the old hold and flags the order.
    escrow.payment_method_ref = "pm_card_chargeDeclined"
    db_session.commit()
    much_later = later + timedelta(days=6, hours=1)
    clock.now = much_later
    assert holds.renew(db_session, pay.gateway, pay.config, oid, much_later) == "declined"
    db_session.commit()
    escrow = escrow_of(db_session, oid)
    assert escrow.flag == "renewal_declined" and escrow.state == "authorized"
    last = db_session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
    assert last is not None and last.topic == "payment:failed"
    assert last.payload["stage"] == "renewal"


def test_far_future_orders_are_authorised_by_the_beat_job(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    when = _now() + timedelta(days=20)
    order = accepted(client, people, scheduledFor=when.isoformat())
    oid = uuid.UUID(order["id"])
    assert holds.authorize(db_session, pay.gateway, pay.config, oid, _now()) == "scheduled"
    due = when - timedelta(hours=23)
    assert queries.find_due_for_authorization(db_session, due, 10) == [oid]
    assert holds.authorize(db_session, pay.gateway, pay.config, oid, due) == "authorized"
    assert holds.authorize(db_session, pay.gateway, pay.config, oid, due) == "already-held"
    db_session.commit()
    assert escrow_of(db_session, oid).state == "authorized"
    assert len(_ops(pay, "hold")) == 1


def test_a_declined_scheduled_authorisation_is_flagged_until_a_new_card(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    when = _now() + timedelta(days=20)
    order = accepted(client, people, pm="pm_card_chargeCustomerFail",
                     scheduledFor=when.isoformat())
    oid = uuid.UUID(order["id"])
    due = when - timedelta(hours=1)
    assert holds.authorize(db_session, pay.gateway, pay.config, oid, due) == "declined"
    db_session.commit()
    assert escrow_of(db_session, oid).flag == "authorization_declined"
    assert queries.find_due_for_authorization(db_session, due, 10) == []
    saved = call(client, "POST", "/payments/methods", people["creator"],
                 {"paymentMethodId": "pm_card_visa"})
    assert saved.status_code == 201
    assert queries.find_due_for_authorization(db_session, due, 10) == [oid]
    assert holds.authorize(db_session, pay.gateway, pay.config, oid, due) == "authorized"


def test_a_lapsed_hold_fails_the_capture_and_says_so(
        client: FlaskClient, people: dict[str, User], pay: Payments, clock: Clock,
        db_session: Session) -> None:
    order = accepted(client, people)
    oid = uuid.UUID(order["id"])
    deliver(db_session, oid)
    clock.now = _now() + timedelta(days=8)
    assert capture.capture(db_session, pay.gateway, pay.config, oid, _now()) == "failed"
    db_session.commit()
    escrow = escrow_of(db_session, oid)
    assert (escrow.state, escrow.flag) == ("failed", "hold_lapsed")
    assert _balances(db_session) == {}


def test_every_posting_balances(client: FlaskClient, people: dict[str, User],
                                pay: Payments, db_session: Session) -> None:
    with pytest.raises(ledger.UnbalancedPosting):
        ledger.post(db_session, key="bad", kind="capture", order_id=None, currency="USD",
                    legs=[(ledger.Account.ESCROW, 5), (ledger.Account.CREATOR_FUNDING, -4)])
    first = ledger.post(db_session, key="k1", kind="capture", order_id=None, currency="JPY",
                        legs=ledger.capture_legs(500))
    again = ledger.post(db_session, key="k1", kind="capture", order_id=None, currency="JPY",
                        legs=ledger.capture_legs(500))
    assert first.id == again.id
    assert _balances(db_session) == {("creator_funding", "JPY"): -500, ("escrow", "JPY"): 500}
