"""Settlement: split a captured payment into platform fee, processing fee and the provider's
net, then transfer the net to the provider's connected account.

Two steps, each its own transaction, so a crash between them is a state, not a mystery:
``split`` (captured -> settling: fees fixed, ledger posted) and ``pay_out`` (settling ->
settled: the transfer, keyed by the order, and its posting). The tasks drive both
(``tasks.payments``); a 429 is waited out as a Celery retry, never a sleep in the worker.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from core.metrics import SETTLEMENT_AMOUNT
from db.queries import orders as order_queries
from db.queries import payments as queries
from db.session import after_commit
from domain.money import split_fees
from domain.payments import keys, ledger, payout_status
from domain.payments.config import PaymentConfig
from domain.payments.escrow import EscrowState, may_settle
from domain.payments.gateway import PaymentGateway
from domain.payments.records import COMPLETED, publish, set_state, transaction_of

log = logging.getLogger(__name__)


def split(session: Session, config: PaymentConfig, order_id: uuid.UUID, now: datetime) -> bool:
    """Fix the fee split of a settleable escrow and book it. False: not (yet) settleable."""
    order = order_queries.find_by_id(session, order_id, for_update=True)
    escrow = queries.find_escrow_by_order(session, order_id, for_update=True)
    if order is None or escrow is None or escrow.state != EscrowState.CAPTURED:
        return False
    if not may_settle(EscrowState(escrow.state), escrow.settle_after, order.status,
                      escrow.flag, now):
        return False
    account = queries.find_payout_account(session, escrow.payee_id, escrow.gateway)
    if account is None or not account.payouts_enabled:
        return False  # settlement waits for the provider's payout account
    fees = split_fees(escrow.captured_minor - escrow.refunded_minor, escrow.currency,
                      config.fee_policy)
    txn = transaction_of(session, escrow)
    txn.gross_amount_minor = fees.gross
    txn.platform_fee_minor = fees.platform_fee
    txn.processing_fee_minor = fees.processing_fee
    txn.net_amount_minor = fees.net
    ledger.post(session, key=f"order/{order_id}/settle", kind="settle", order_id=order_id,
                currency=escrow.currency, legs=ledger.settle_legs(fees))
    set_state(session, escrow, EscrowState.SETTLING, now)
    session.flush()
    return True


def pay_out(session: Session, gateway: PaymentGateway, order_id: uuid.UUID,
            now: datetime) -> bool:
    """Transfer the fixed net to the provider (``transfer_group`` = the order) and book it."""
    escrow = queries.find_escrow_by_order(session, order_id, for_update=True)
    if escrow is None or escrow.state != EscrowState.SETTLING:
        return False
    txn = transaction_of(session, escrow)
    net = txn.net_amount_minor
    if net > 0:
        account = queries.find_payout_account(session, escrow.payee_id, escrow.gateway)
        assert account is not None  # split() checked it; accounts are replaced, not deleted
        transfer = gateway.transfer(amount=net, currency=escrow.currency,
                                    destination=account.account_ref,
                                    transfer_group=str(order_id),
                                    idempotency_key=keys.transfer(order_id))
        ledger.post(session, key=f"order/{order_id}/payout", kind="payout", order_id=order_id,
                    currency=escrow.currency, legs=ledger.payout_legs(net),
                    processor_ref=transfer.id)
        escrow.transfer_ref = transfer.id
        payout_status.transferred(escrow, now)
        # Counted once the settled state commits: a run that crashes after the transfer
        # repeats it under the same idempotency key and must not count the money twice.
        currency = escrow.currency
        after_commit(session, lambda: SETTLEMENT_AMOUNT.labels(currency).inc(net))
    set_state(session, escrow, EscrowState.SETTLED, now)
    session.flush()
    publish(session, COMPLETED, escrow, "settled", netMinor=net,
            platformFeeMinor=txn.platform_fee_minor,
            processingFeeMinor=txn.processing_fee_minor)
    return True
