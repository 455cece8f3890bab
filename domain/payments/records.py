"""Escrow bookkeeping shared by the commands: open an escrow, move its state (keeping the
spec's ``payment_transactions`` row in step), flag it, publish ``payment:*`` events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import PaymentStatus
from core.errors import Conflict
from db.models import Order, PaymentEscrow, PaymentTransaction
from domain.events import emit
from domain.money import format_minor
from domain.payments.escrow import PAYMENT_STATUS, EscrowState, Flag

# Topics for the real-time layer. ``stage`` in the payload says which step:
#   payment:processing  scheduled | authentication_required | authorized
#   payment:completed   captured | refunded | released | settled
#   payment:failed      authorization | authentication | renewal | capture | hold_lapsed |
#                       chargeback
PROCESSING = "payment:processing"
COMPLETED = "payment:completed"
FAILED = "payment:failed"
#: Escrows an order re-opened after a no-show may start again from: nothing held, nothing owed.
REUSABLE = frozenset({EscrowState.RELEASED.value, EscrowState.FAILED.value})


def open_escrow(session: Session, order: Order, gateway: str) -> PaymentEscrow:
    """The escrow of a just-accepted order (and its ``payment_transactions`` row).

    An order accepted again after its acceptance was undone (3-D Secure never completed), or
    re-opened after a provider no-show (issue 17), still has its escrow: released (or failed)
    with nothing captured, it holds nothing and owes nothing, so it is reused (one escrow per
    order), and its hold generation counts on, so the new hold gets a new idempotency key
    instead of the processor's replay of the abandoned one. Anything else is still being
    released: 409 ``PAYMENT_RELEASE_PENDING``."""
    assert order.provider_id is not None and order.agreed_amount_minor is not None
    earlier = session.scalars(select(PaymentEscrow).where(PaymentEscrow.order_id == order.id)
                              .with_for_update()).one_or_none()
    if earlier is not None:
        if earlier.state not in REUSABLE or earlier.captured_minor:
            raise Conflict("This order's previous payment is still open.",
                           code="PAYMENT_RELEASE_PENDING", details={"state": earlier.state})
        earlier.payee_id = order.provider_id
        earlier.amount_minor = order.agreed_amount_minor
        earlier.currency = order.currency
        earlier.gateway = gateway
        earlier.authorized_minor = earlier.refund_due_minor = 0
        earlier.intent_ref = None
        earlier.hold_expires_at = None
        earlier.authorize_at = None
        earlier.flag = None
        earlier.flagged_at = None
        txn = transaction_of(session, earlier)
        txn.payee_id = order.provider_id
        txn.currency = order.currency
        txn.stripe_payment_intent_id = None
        earlier.state = EscrowState.AWAITING_AUTHORIZATION.value
        txn.status = PAYMENT_STATUS[EscrowState.AWAITING_AUTHORIZATION]
        session.flush()
        return earlier
    txn = PaymentTransaction(order_id=order.id, payer_id=order.creator_id,
                             payee_id=order.provider_id, gross_amount_minor=0,
                             platform_fee_minor=0, processing_fee_minor=0, net_amount_minor=0,
                             currency=order.currency, status=PaymentStatus.PENDING)
    session.add(txn)
    session.flush()
    escrow = PaymentEscrow(order_id=order.id, transaction_id=txn.id, payer_id=order.creator_id,
                           payee_id=order.provider_id,
                           state=EscrowState.AWAITING_AUTHORIZATION.value,
                           currency=order.currency, amount_minor=order.agreed_amount_minor,
                           authorized_minor=0, captured_minor=0, refunded_minor=0,
                           refund_due_minor=0, refund_count=0, hold_generation=0,
                           gateway=gateway)
    session.add(escrow)
    session.flush()
    return escrow


def transaction_of(session: Session, escrow: PaymentEscrow) -> PaymentTransaction:
    txn = session.get(PaymentTransaction, escrow.transaction_id)
    assert txn is not None  # same transaction, FK cascade
    return txn


def set_state(session: Session, escrow: PaymentEscrow, state: EscrowState,
              now: datetime) -> PaymentTransaction:
    escrow.state = state.value
    txn = transaction_of(session, escrow)
    txn.status = PAYMENT_STATUS[state]
    if state is EscrowState.CAPTURED and txn.processed_at is None:
        txn.processed_at = now
    if state is EscrowState.SETTLED:
        txn.settled_at = now
    return txn


def set_flag(escrow: PaymentEscrow, flag: Flag | None, now: datetime) -> None:
    escrow.flag = flag.value if flag else None
    escrow.flagged_at = now if flag else None


def publish(session: Session, topic: str, escrow: PaymentEscrow, stage: str,
            **extra: Any) -> None:
    payload: dict[str, Any] = {
        "paymentId": str(escrow.transaction_id), "orderId": str(escrow.order_id),
        "creatorId": str(escrow.payer_id), "providerId": str(escrow.payee_id),
        "stage": stage, "state": escrow.state, "currency": escrow.currency,
        "amount": format_minor(escrow.amount_minor, escrow.currency),
    }
    payload.update(extra)
    emit(session, topic, str(escrow.order_id), payload)
