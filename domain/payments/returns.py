"""Money going back to the creator: a hold cancelled, captured money refunded.

Shared by the capture path (nothing left to capture: release instead) and the hold path (a
cancelled order: release, or refund what was captured), so neither imports the other.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from db.models import Order, PaymentEscrow
from domain.money import FeePolicy
from domain.payments import keys, ledger
from domain.payments.escrow import EscrowState
from domain.payments.gateway import InvalidRequest, PaymentGateway
from domain.payments.records import COMPLETED, publish, set_state


def cancel_intent(gateway: PaymentGateway, order_id: uuid.UUID, intent_ref: str) -> str:
    """Cancel a hold; returns the intent's final status. Cancelling what already lapsed or
    was cancelled (a previous attempt whose commit was lost) is not an error."""
    try:
        return gateway.cancel(intent_ref, idempotency_key=keys.cancel(order_id, intent_ref)).status
    except InvalidRequest:
        return gateway.retrieve_intent(intent_ref).status


def refund_due(session: Session, gateway: PaymentGateway, escrow: PaymentEscrow, order: Order,
               now: datetime, policy: FeePolicy) -> None:
    """Return ``refund_due_minor`` of captured money to the creator (one refund, numbered),
    and book the processing fee the processor keeps on the refunded part (see
    ``ledger.refund_fee``): in the same transaction, under its own key."""
    assert escrow.intent_ref is not None
    amount = escrow.refund_due_minor
    number = escrow.refund_count + 1
    refund = gateway.refund(escrow.intent_ref, amount=amount, order_id=str(order.id),
                            idempotency_key=keys.refund(order.id, number))
    ledger.post(session, key=f"order/{order.id}/refund/{number}", kind="refund",
                order_id=order.id, currency=escrow.currency, legs=ledger.refund_legs(amount),
                processor_ref=refund.id)
    kept = ledger.refund_fee(escrow.captured_minor, escrow.refunded_minor, amount,
                             escrow.currency, policy)
    ledger.post(session, key=f"order/{order.id}/refund/{number}/fee", kind="refund_fee",
                order_id=order.id, currency=escrow.currency,
                legs=ledger.refund_fee_legs(kept), processor_ref=refund.id)
    escrow.refund_count = number
    escrow.refunded_minor += amount
    escrow.refund_due_minor = 0
    if escrow.refunded_minor == escrow.captured_minor:
        set_state(session, escrow, EscrowState.REFUNDED, now)
    else:
        escrow.settle_after = now  # the rest goes to the provider
    session.flush()
    publish(session, COMPLETED, escrow, "refunded", refundedMinor=amount)
