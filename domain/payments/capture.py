"""Capture on completion, refunds, and the money side of a dispute's resolution."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from core.enums import OrderStatus
from core.errors import ValidationFailed
from db.models import Order, PaymentEscrow, User
from db.queries import orders as order_queries
from db.queries import payments as queries
from domain import order_actions
from domain.money import MoneyError, check_chargeable, to_minor
from domain.payments import keys, ledger, returns
from domain.payments.config import PaymentConfig
from domain.payments.escrow import (
    EscrowState,
    Flag,
    capture_amount,
    capture_wanted,
    refund_for_resolution,
    settle_after,
)
from domain.payments.gateway import Intent, IntentStatus, InvalidRequest, PaymentGateway
from domain.payments.records import COMPLETED, FAILED, publish, set_flag, set_state


def record_capture(session: Session, escrow: PaymentEscrow, order: Order, intent: Intent,
                   now: datetime, *, settle_after: datetime) -> None:
    """Book a capture the processor reports (by our task or seen in a webhook): one ledger
    posting per order, so recording it twice is harmless."""
    captured = intent.amount_received
    ledger.post(session, key=f"order/{order.id}/capture", kind="capture", order_id=order.id,
                currency=escrow.currency, legs=ledger.capture_legs(captured),
                processor_ref=intent.id)
    # A refund decided before capture is honoured by not capturing that part; what the
    # processor captured anyway (an earlier attempt's answer) is still owed back.
    base = min(order.agreed_amount_minor or 0, escrow.authorized_minor)
    escrow.refund_due_minor = max(0, escrow.refund_due_minor - max(0, base - captured))
    escrow.captured_minor = captured
    escrow.settle_after = settle_after
    set_state(session, escrow, EscrowState.CAPTURED, now)
    session.flush()
    publish(session, COMPLETED, escrow, "captured", capturedMinor=captured)


def _settle_after_for(order: Order, config: PaymentConfig, now: datetime) -> datetime:
    if order.status is OrderStatus.CANCELLED:  # a decided dispute: nothing left to wait for
        return now
    return settle_after(order.completed_at or now, config.dispute_window,
                        config.settlement_grace)


def _fail(session: Session, escrow: PaymentEscrow, flag: Flag, stage: str,
          now: datetime) -> None:
    set_flag(escrow, flag, now)
    set_state(session, escrow, EscrowState.FAILED, now)
    session.flush()
    publish(session, FAILED, escrow, stage, flag=flag.value)


def capture_now(session: Session, gateway: PaymentGateway, config: PaymentConfig,
                escrow: PaymentEscrow, order: Order, now: datetime) -> str:
    assert escrow.intent_ref is not None and order.agreed_amount_minor is not None
    amount = capture_amount(order.agreed_amount_minor, escrow.authorized_minor,
                            escrow.refund_due_minor)
    if amount == 0:  # everything is to go back: release the hold instead of capturing
        returns.cancel_intent(gateway, order.id, escrow.intent_ref)
        escrow.refund_due_minor = 0
        set_state(session, escrow, EscrowState.RELEASED, now)
        session.flush()
        publish(session, COMPLETED, escrow, "released")
        return "released"
    try:
        intent = gateway.capture(escrow.intent_ref, amount=amount,
                                 idempotency_key=keys.capture(order.id, escrow.intent_ref))
    except InvalidRequest:
        # Re-read: captured already (a lost commit, a processor that ignores keys) or lapsed.
        intent = gateway.retrieve_intent(escrow.intent_ref)
        if intent.status != IntentStatus.SUCCEEDED:
            _fail(session, escrow, Flag.HOLD_LAPSED if intent.status == IntentStatus.CANCELED
                  else Flag.CAPTURE_FAILED, "capture", now)
            return "failed"
    record_capture(session, escrow, order, intent, now,
                   settle_after=_settle_after_for(order, config, now))
    return "captured"


def capture(session: Session, gateway: PaymentGateway, config: PaymentConfig,
            order_id: uuid.UUID, now: datetime) -> str:
    """The order was delivered: capture the held amount (partial when the agreed amount
    dropped). State-checked under the row locks: running it twice captures once."""
    order = order_queries.find_by_id(session, order_id, for_update=True)
    escrow = queries.find_escrow_by_order(session, order_id, for_update=True)
    if order is None or escrow is None:
        return "nothing"
    if escrow.state != EscrowState.AUTHORIZED or not capture_wanted(order.status):
        return "not-due"
    return capture_now(session, gateway, config, escrow, order, now)


def resolve_dispute(session: Session, order_id: uuid.UUID, admin: User | None, outcome: str,
                    note: str, refund_amount: str | int | float | Decimal | None,
                    now: datetime) -> Order:
    """The admin's decision, money included: ``release`` pays the provider (after the dispute
    window, like any completed order); ``refund`` returns ``refund_amount`` (default: all) to
    the creator and settles any rest to the provider. The refund itself is made by the
    ``payments.apply_resolution`` task after commit."""
    if outcome != "refund" and refund_amount is not None:
        raise ValidationFailed("The request is not valid.",
                               details={"refundAmount": ["Only with outcome 'refund'."]})
    order = order_actions.resolve(session, order_id, admin, outcome, note, now)
    refund_minor = None
    if refund_amount is not None:
        try:
            refund_minor = check_chargeable(to_minor(refund_amount, order.currency),
                                            order.currency)
        except MoneyError as exc:
            raise ValidationFailed("The request is not valid.",
                                   details={"refundAmount": [exc.message]}) from exc
    escrow = queries.find_escrow_by_order(session, order_id, for_update=True)
    if escrow is None or outcome != "refund":
        return order
    available = refund_for_resolution(None, escrow.captured_minor, escrow.refunded_minor,
                                      escrow.authorized_minor, EscrowState(escrow.state))
    if refund_minor is not None and refund_minor > available:
        raise ValidationFailed("The request is not valid.", details={
            "refundAmount": [f"At most {available} minor units can be refunded."]})
    escrow.refund_due_minor = refund_for_resolution(
        refund_minor, escrow.captured_minor, escrow.refunded_minor, escrow.authorized_minor,
        EscrowState(escrow.state))
    session.flush()
    return order


def apply_resolution(session: Session, gateway: PaymentGateway, config: PaymentConfig,
                     order_id: uuid.UUID, now: datetime) -> str:
    """Carry out a refund resolution: before capture, capture only what the provider keeps
    (or release everything); after capture, refund what is due."""
    order = order_queries.find_by_id(session, order_id, for_update=True)
    escrow = queries.find_escrow_by_order(session, order_id, for_update=True)
    if order is None or escrow is None or order.status is not OrderStatus.CANCELLED:
        return "nothing"
    outcome = "nothing"
    if escrow.state == EscrowState.AUTHORIZED:
        outcome = capture_now(session, gateway, config, escrow, order, now)
    if escrow.state == EscrowState.CAPTURED and escrow.refund_due_minor > 0:
        returns.refund_due(session, gateway, escrow, order, now, config.fee_policy)
        return "refunded"
    return outcome
